"""Declarative environments: the environment file, plan and apply of many applications, users and
groups, drift, export (adopting a server as a file) and the least-privilege lint.
Imports ``access`` (specs, state, the plan and its executor), ``orkes``, ``credentials``, ``toml`` and
the shared basics; never click.
"""
