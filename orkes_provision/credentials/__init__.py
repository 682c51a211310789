"""Where secrets live: credential stores behind one protocol, the deliveries record, private files,
settings and profiles (which provisioning key goes to which server).
Imports ``orkes`` (URLs, models) and the shared basics; never click.
"""
