"""One model copy per machine, called by all its SDK processes, without waiting on anything but the model.

Built on Beam's `multi_process_shared` (what RunInference's large-model sharing uses), with two changes
that each cost tens of milliseconds per model call otherwise (measured by `benchmarks/sharing.py`):
- The model lives in a process of its own (`spawn_process=True`). RunInference's own sharing keeps it in
  the first SDK process that loads it; that process is busy with its share of the pipeline, and every call
  from the other processes then waits for its GIL, several times per call at Python's 5 ms switch interval.
- Connections send each message at once (TCP_NODELAY). `multiprocessing.connection` sends a message over
  16 KiB as two writes, a 4-byte header and then the payload; with Nagle's algorithm the payload's last
  segment waits for the receiver's delayed ACK, about 40 ms whatever the model.
"""

from __future__ import annotations

import multiprocessing.connection
import socket
import threading
from typing import Callable

_lock = threading.Lock()


def _no_delay(connection: multiprocessing.connection.Connection) -> multiprocessing.connection.Connection:
    sock = socket.socket(fileno=connection.fileno())
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finally:
        sock.detach()  # the connection keeps owning the descriptor
    return connection


def send_without_delay() -> None:
    """From now on, multiprocessing connections of this process send each message at once (idempotent)."""
    with _lock:
        module = multiprocessing.connection
        if getattr(module.SocketClient, "_bertqa_no_delay", False):
            return
        client, accept = module.SocketClient, module.SocketListener.accept

        def socket_client(address):
            return _no_delay(client(address))

        def socket_accept(self):
            return _no_delay(accept(self))

        socket_client._bertqa_no_delay = True
        module.SocketClient = socket_client
        module.SocketListener.accept = socket_accept


class _Loader:
    """Runs in the model's own process: connections there send at once too, then the model is loaded."""

    def __init__(self, load: Callable[[], object]):
        self._load = load

    def __call__(self):
        send_without_delay()
        return self._load()


def machine_model(load: Callable[[], object], tag: str):
    """A proxy to the machine's one model for `tag`: loaded by `load` (picklable) in a process of its own the
    first time any process of the machine asks, then shared. Calls go through the proxy's methods."""
    from apache_beam.utils import multi_process_shared

    send_without_delay()
    return multi_process_shared.MultiProcessShared(_Loader(load), tag=tag, always_proxy=True,
                                                   spawn_process=True).acquire()

