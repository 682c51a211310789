"""Kubernetes through kubectl: manifests rendered from templates, applying them, rollouts, and
``provision deploy kubernetes``. Imports ``credentials``, ``workers`` and the shared basics; never click.
"""
