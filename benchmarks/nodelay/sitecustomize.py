"""Loaded (via PYTHONPATH) only into the sandbox processes the benchmarks start: TCP_NODELAY on listening sockets.

The sandbox's uvicorn (h11) writes a response's headers and body separately; with Nagle's algorithm
on, the body then waits for the client's delayed ACK, about 40 ms per request on Linux loopback,
which would swamp the 50 ms of latency being measured. Accepted sockets inherit the option from
the listening socket. Harmless if the sandbox sets it itself.
"""

import socket

_listen = socket.socket.listen


def _listen_nodelay(self: socket.socket, *args: int) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and self.type == socket.SOCK_STREAM:
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _listen(self, *args)


socket.socket.listen = _listen_nodelay  # type: ignore[method-assign]
