"""The HTTP boundary: ``OrkesClient`` (one method per endpoint), token auth, retries, rate limiting,
URL rules and the API models. The one place HTTP errors become ``ProvisionError``.
Imports only the shared basics (``errors``, ``paths``); never click, never the other domains.
"""
