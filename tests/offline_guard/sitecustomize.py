"""Block outbound network access in processes started for notebook execution.

Loaded automatically (Python imports ``sitecustomize`` at start-up) when this folder
is on ``PYTHONPATH`` and ``COURSE_BLOCK_NETWORK=1``; ``scripts/course_env.py`` sets both
for every notebook kernel (and for the processes a notebook starts). Loopback and Unix
sockets still work (the kernel talks to Jupyter over them). Any other connection,
datagram or name lookup raises ``NetworkBlocked``, a ``BaseException`` so that no
``except Exception`` fallback can hide the attempt: the cell fails and nbval names it.
``tests/test_offline_guard.py`` checks all of this inside an nbval kernel.
"""

import os

if os.environ.get("COURSE_BLOCK_NETWORK") == "1":
    import socket

    class NetworkBlocked(BaseException):
        """Raised on any attempt to reach the network while notebooks execute."""

    _LOCAL = {"localhost", "localhost.", "127.0.0.1", "::1", "0.0.0.0", "::", ""}
    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex
    _sendto = socket.socket.sendto
    _getaddrinfo = socket.getaddrinfo
    _gethostbyname = socket.gethostbyname
    _gethostbyname_ex = socket.gethostbyname_ex

    def _is_local_host(host) -> bool:
        if host is None:
            return True
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("ascii", "replace")
        host = str(host).lower()
        return host in _LOCAL or host.startswith("127.") or host == "::ffff:127.0.0.1"

    def _is_local(sock: socket.socket, address) -> bool:
        if getattr(socket, "AF_UNIX", None) == sock.family:
            return True
        host = address[0] if isinstance(address, tuple) else address
        return _is_local_host(host)

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

    def sendto(self, data, *args):
        address = args[-1] if args else None
        if address is not None and not _is_local(self, address):
            _refuse(address)
        return _sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local_host(host):
            _refuse(host)
        return _getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not _is_local_host(host):
            _refuse(host)
        return _gethostbyname(host)

    def gethostbyname_ex(host):
        if not _is_local_host(host):
            _refuse(host)
        return _gethostbyname_ex(host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
