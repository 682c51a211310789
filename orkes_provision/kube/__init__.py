"""Kubernetes through kubectl: manifests rendered from templates (``manifests``), the kubectl runner
(``kubectl``) and rollouts onto a new key (``rollout``).
Imports only the shared basics (``errors``); never click, never the other domains.
"""
