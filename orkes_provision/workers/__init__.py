"""Workers: the project file, launching with credentials injected, the supervisor, its status
file (read by rotation), and project scaffolds with their templates.
Imports ``orkes``, ``credentials`` and the shared basics; never click.
"""
