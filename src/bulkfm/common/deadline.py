"""A total deadline per HTTP request, which per-read timeouts alone do not give.

``requests``/urllib3 and httpx apply a timeout to each socket read, so a server that sends one
byte a second (headers or body) keeps a request alive forever. Here the whole request, from
sending it to the last body byte, gets ``seconds``:

* ``requests`` (SRA/ENA/NCBI clients): :func:`mount` puts adapters on a session whose
  connections register their socket with the calling thread's :func:`total_deadline`; a timer
  shuts the socket down when the deadline passes, the blocked read returns, and the request
  raises ``requests.Timeout`` (which the retry loops treat as transient).
* httpx2 (the ``openai`` client): :func:`httpx_transport` caps every read, write and connect
  timeout by the time left to the thread's deadline, and raises a read timeout once it is gone.

Deadlines are per thread, so concurrent requests (the LLM's thread pool) do not share one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

_local = threading.local()


class _Scope:
    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = float(seconds)
        self.what = what
        self.end = time.monotonic() + self.seconds
        self.expired = False
        self.cut = False  # a socket was shut down by the deadline: whatever was read is truncated
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.timer = threading.Timer(max(0.0, self.seconds), self._expire)
        self.timer.daemon = True

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def register(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            if self.expired:
                self.cut = True
                _shutdown(sock)
            else:
                self.sockets.append(sock)

    def _expire(self) -> None:
        with self.lock:
            self.expired = True
            self.cut = bool(self.sockets)
            for sock in self.sockets:
                _shutdown(sock)

    def message(self) -> str:
        return (f"{self.what}: no complete response within the total deadline of {self.seconds:g}s "
                "(a server sending slowly, e.g. a byte at a time)")


def _shutdown(sock: socket.socket) -> None:
    # Wakes a recv() blocked in another thread. The plain socket method also for TLS sockets:
    # SSLSocket.shutdown would drop its SSL object under the reading thread.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def current() -> _Scope | None:
    return getattr(_local, "scope", None)


@contextlib.contextmanager
def total_deadline(seconds: float, what: str = "request") -> Iterator[_Scope]:
    """Give every request made by this thread inside the block ``seconds`` in total.

    With ``requests`` (on a :func:`mount`-ed session), an error after the deadline is re-raised
    as ``requests.Timeout`` naming the deadline.
    """
    scope = _Scope(seconds, what)
    outer = current()
    _local.scope = scope
    scope.timer.start()
    try:
        yield scope
    except Exception as exc:
        if scope.cut:
            import requests

            # the socket was shut down under a requests call: say why (httpx raises its own)
            if isinstance(exc, requests.RequestException) and not isinstance(exc, requests.Timeout):
                raise requests.Timeout(scope.message()) from exc
        raise
    else:
        if scope.cut:  # a shutdown mid-headers reads as a clean end: the answer is truncated
            import requests

            raise requests.Timeout(scope.message())
    finally:
        scope.timer.cancel()
        _local.scope = outer


# ---------------------------------------------------------------------------------- requests
def mount(session: Any) -> Any:
    """Mount deadline-aware adapters for http:// and https:// on a ``requests.Session``."""
    session.mount("http://", _adapter())
    session.mount("https://", _adapter())
    return session


def _adapter() -> Any:
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Registering:
        def request(self, *args: Any, **kwargs: Any) -> Any:  # every request on this connection
            scope = current()
            if scope is not None:
                if self.sock is None:
                    self.connect()
                scope.register(self.sock)
            return super().request(*args, **kwargs)

    class _Conn(_Registering, HTTPConnection):
        pass

    class _SConn(_Registering, HTTPSConnection):
        pass

    class _Pool(HTTPConnectionPool):
        ConnectionCls = _Conn

    class _SPool(HTTPSConnectionPool):
        ConnectionCls = _SConn

    classes = {"http": _Pool, "https": _SPool}

    class DeadlineAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = classes

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = classes
            return manager

    return DeadlineAdapter()


# ---------------------------------------------------------------------------------- httpx2
def httpx_transport(**kwargs: Any) -> Any:
    """An ``httpx2.HTTPTransport`` whose network I/O honours the thread's total deadline."""
    import httpcore2
    import httpx2

    def capped(timeout: float | None) -> float | None:
        scope = current()
        if scope is None:
            return timeout
        left = scope.remaining()
        if left <= 0:
            raise httpcore2.ReadTimeout(scope.message())
        return left if timeout is None else min(timeout, left)

    class Stream(httpcore2.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self.inner.read(max_bytes, capped(timeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self.inner.write(buffer, capped(timeout))

        def close(self) -> None:
            self.inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            return Stream(self.inner.start_tls(ssl_context, server_hostname, capped(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self.inner.get_extra_info(info)

    class Backend(httpcore2.NetworkBackend):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None, socket_options: Any = None) -> Any:
            return Stream(self.inner.connect_tcp(host, port, capped(timeout), local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            return Stream(self.inner.connect_unix_socket(path, capped(timeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self.inner.sleep(seconds)

    transport = httpx2.HTTPTransport(**kwargs)
    pool = transport._pool  # the connection pool reads its backend when it opens a connection
    pool._network_backend = Backend(pool._network_backend)
    return transport
