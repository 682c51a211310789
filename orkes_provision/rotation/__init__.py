"""Key rotation as a resumable state machine (``rotate``), and its on-disk record (``record``).
Imports ``orkes``, ``access``, ``environments`` (an environment's applications), ``credentials``,
``workers`` (supervisor status) and the shared basics; never click.
"""
