"""orkes-provision: Orkes Conductor access control and worker deployment, automated."""

__version__ = "0.1.0"
