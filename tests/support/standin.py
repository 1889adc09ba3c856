"""What every loopback stand-in shares: a real HTTP server on 127.0.0.1 in a background thread,
its address, and a stop that releases the answers it is holding back.

    class ServiceStandIn(LoopbackServer):
        name = "the Service stand-in"
        def _handler(self) -> type[BaseHTTPRequestHandler]: ...
        # self._state.stopping: an Event that held answers wait on

`tls` (a server SSLContext) makes it answer over HTTPS; `server_class` may quiet the errors of
clients that gave up on a late answer.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Start, address and stop of one stand-in server."""

    name = "the stand-in"
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
    tls: ssl.SSLContext | None = None
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT` (`https` with `tls`)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    def start(self, port: int = 0) -> Self:
        """Listen on a free port (or `port`) in a background thread."""
        self._server = self.server_class(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release the answers held back, stop listening."""
        stopping: threading.Event = self._state.stopping  # type: ignore[attr-defined]
        stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
