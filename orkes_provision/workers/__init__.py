"""Workers: the project file, launching with credentials injected, the supervisor and its status
file (read by rotation), project scaffolds with their templates, and Kubernetes Deployments of workers.
Imports ``orkes``, ``access`` (the doctor's checks), ``environments`` (the project file's
declarations), ``credentials``, ``kube``, ``toml`` and the shared basics; never click.
"""
