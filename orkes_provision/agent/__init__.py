"""The local credential agent: a loopback reverse proxy that holds an application's key for its workers.

Workers get the agent's URL and a local key of their own (``instances``); the agent exchanges the
application's real key for tokens, forwards the workers' ``/api`` requests with them (``proxy``) over a
keep-alive pool of connections (``connections``),
follows the key in its store (``agent``), remembers which instance holds which task and hands the
tasks of a stopped instance back to the queue (``tracking``), and says what it does on ``/health``
and ``/metrics`` (``metrics``) and in a registration file that rotation and the doctor read
(``registry``). Imports ``orkes``, ``credentials`` and the shared basics; never click.
"""
