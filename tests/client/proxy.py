"""A TCP proxy in front of the service that breaks connections the way networks do."""

import contextlib
import socket
import threading

import httpx


class Proxy:
    """Forwards TCP to ``upstream``.

    ``armed``: the next answer from upstream is dropped and the client's connection
    closed, after the service has done the work. ``cut()``: every open connection is
    closed from the server's side, and new ones are refused until ``resume()``.
    """

    def __init__(self, upstream: str) -> None:
        url = httpx.URL(upstream)
        self._upstream = (url.host, url.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.armed = threading.Event()
        self.dropped = 0
        self.cuts = 0
        self.accepted = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._refusing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._refusing = True
            self.cuts += 1
            for end in self._open:
                _close(end)
            self._open.clear()

    def resume(self) -> None:
        with self._lock:
            self._refusing = False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._refusing:
                    _close(client)
                    continue
                server = socket.create_connection(self._upstream)
                self._open |= {client, server}
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self.armed.is_set():
                    self.armed.clear()
                    self.dropped += 1
                    break
                target.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open -= {source, target}
        for end in (source, target):
            _close(end)

    def close(self) -> None:
        self._listener.close()
        self.cut()


def _close(end: socket.socket) -> None:
    with contextlib.suppress(OSError):
        end.shutdown(socket.SHUT_RDWR)
    end.close()
