"""Key rotation as a resumable state machine, and its on-disk record.
Imports ``orkes``, ``access``, ``credentials``, ``workers`` (supervisor status) and ``kube``; never click.
"""
