"""A client of mon's protocol (hastack's server or mon 1.3's): what `hastack mon status` and
`hastack mon client` use, as moncmd does: one request line, its data lines, then a
`NNN text` status line (2xx: done, 5xx: refused)."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

from hastack.mon.model import DEFAULT_PORT
from hastack.mon.protocol import PROT_VERSION

TIMEOUT = 30.0


class MonClientError(Exception):
    """The server could not be reached, or refused (its status line in the message)."""


@dataclass(frozen=True)
class Answer:
    lines: list[str]  # the data lines
    status: str  # the final "NNN text" line

    @property
    def ok(self) -> bool:
        return self.status[:1] == "2"


class MonClient:
    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout: float = TIMEOUT):
        self.address = (host, port)
        try:
            self._sock = socket.create_connection(self.address, timeout)
        except OSError as exc:
            raise MonClientError(f"cannot reach the mon server at {host}:{port}: {exc}") from None
        self._file = self._sock.makefile("rwb")

    def __enter__(self) -> MonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(MonClientError):
            self.send("quit")
        self._file.close()
        self._sock.close()

    def send(self, line: str) -> Answer:
        """One request; its answer (the status line may say it was refused)."""
        try:
            self._file.write(line.encode("utf-8", "surrogateescape") + b"\n")
            self._file.flush()
            lines: list[str] = []
            while True:
                raw = self._file.readline()
                if not raw:
                    raise MonClientError(f"the server closed the connection after {line!r}")
                text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
                if len(text) >= 4 and text[:3].isdigit() and text[3] == " ":
                    return Answer(lines, text)
                lines.append(text)
        except OSError as exc:
            raise MonClientError(f"mon server {self.address[0]}:{self.address[1]}: {exc}") from None

    def command(self, line: str) -> list[str]:
        """A request that must succeed: its data lines, or MonClientError with the refusal."""
        answer = self.send(line)
        if not answer.ok:
            raise MonClientError(f"{line!r} refused: {answer.status}")
        return answer.lines

    def handshake(self) -> None:
        """mon's protocol version check (Mon::Client does it first)."""
        self.command(f"protid {PROT_VERSION}")

    def login(self, user: str, password: str) -> None:
        self.command(f"login {user} {password}")
