"""The user's TOML files: reading them with errors in the file's own terms (``read``) and writing
them back as text that reads like a hand-written file (``write``).
Imports only the shared basics.
"""
