"""Kubernetes through kubectl: manifests built as data and dumped as YAML (``manifests``), the kubectl runner
(``kubectl``) and rollouts onto a new key (``rollout``).
Imports only the shared basics (``errors``); never click, never the other domains.
"""
