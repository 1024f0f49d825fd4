"""systemd's sd_notify protocol (READY=1, WATCHDOG=1, STOPPING=1, STATUS=...).

A datagram to the unix socket named by NOTIFY_SOCKET ('@' = abstract namespace). Without
NOTIFY_SOCKET (not under systemd, or Type=simple) every call is a no-op.
"""
from __future__ import annotations

import logging
import socket
from typing import Optional

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, notify_socket: Optional[str]):
        self.address = notify_socket
        if notify_socket and notify_socket.startswith("@"):
            self.address = "\0" + notify_socket[1:]

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, state: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall(state.encode())
        except OSError as exc:  # systemd gone or socket unusable: never fatal to the worker
            log.warning("sd_notify failed", extra={"state": state.split("=")[0], "error": str(exc)})

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")
