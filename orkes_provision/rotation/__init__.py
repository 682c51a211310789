"""Key rotation as a resumable state machine (``rotate``), and its on-disk record (``record``).
Imports ``orkes``, ``access``, ``environments`` (an environment's applications), ``credentials``,
``workers`` (supervisor status), ``agent`` (which key each local credential agent uses) and the
shared basics; never click.
"""
