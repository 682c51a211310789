"""One application's access: application specs, the server's state, the pure plan and the
dependency-graph executor that carry out ``provision app``, the key life cycle, key ages, doctor and
explain (with ``holdings``, the one resolver of how an application holds access), and the worker tasks
a workflow uses (``workflow_tasks``).
Imports ``orkes``, ``credentials``, ``toml`` and the shared basics; never click.
"""
