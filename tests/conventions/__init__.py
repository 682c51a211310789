"""The CLI's conventions, checked over every command ``provision --help`` lists (issue 13).

``tree.py`` walks the real click tree, so a command added to the CLI is checked by every test
here, and a test fails when it breaks a convention or has no run in ``scenarios.py``.
"""
