"""Block outbound network access in processes started for notebook execution.

Loaded automatically (Python imports ``sitecustomize`` at start-up) when this folder
is on ``PYTHONPATH`` and ``COURSE_BLOCK_NETWORK=1``; ``tests/notebook_env.py`` sets both
for every notebook kernel. Loopback and Unix sockets still work (the kernel talks to
Jupyter over them). Any other connection or name lookup raises ``NetworkBlocked``, a
``BaseException`` so that no ``except Exception`` fallback can hide the attempt: the
cell fails and nbval names it.
"""

import os

if os.environ.get("COURSE_BLOCK_NETWORK") == "1":
    import socket

    class NetworkBlocked(BaseException):
        """Raised on any attempt to reach the network while notebooks execute."""

    _LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex
    _getaddrinfo = socket.getaddrinfo

    def _is_local(sock: socket.socket, address) -> bool:
        if getattr(socket, "AF_UNIX", None) == sock.family:
            return True
        host = address[0] if isinstance(address, tuple) else address
        return host in _LOCAL or str(host).startswith("127.")

    def _refuse(what) -> None:
        raise NetworkBlocked(
            f"network access is blocked while the course's notebooks execute "
            f"(tried {what!r}); data and weights must come from data/ (run `make data`)"
        )

    def connect(self, address):
        if not _is_local(self, address):
            _refuse(address)
        return _connect(self, address)

    def connect_ex(self, address):
        if not _is_local(self, address):
            _refuse(address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not (host in _LOCAL or str(host).startswith("127.")):
            _refuse(host)
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
