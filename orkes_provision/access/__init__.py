"""Access control as data: application specs, the server's state, the pure plan, the
dependency-graph executor, ``provision app``, environment files (plan/apply), key life cycle and doctor.
Imports ``orkes``, ``credentials`` and the shared basics; never click.
"""
