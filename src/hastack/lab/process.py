"""A started command the lab controls by PID: signals, reaping, its log file.

Used for commands inside a namespace host (`Host.start`) and for plain local processes (the
loopback cluster), so tests and benchmarks treat both the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import IO


class ManagedProcess:
    """One started command. Signals go to its PID only, never to a name or a group."""

    def __init__(
        self,
        argv: Sequence[str],
        popen: subprocess.Popen[bytes],
        log_path: str | None,
        where: str = "local",
    ) -> None:
        self.argv = list(argv)
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path
        self.where = where  # the host name, or "local"

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        log_path: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        where: str = "local",
    ) -> ManagedProcess:
        """Start `argv`; stdout and stderr go to `log_path` (appended) or are discarded."""
        out: IO[bytes] | int
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # a Ctrl-C on our terminal is ours to handle, not theirs
            )
        finally:
            if not isinstance(out, int):
                out.close()
        return cls(argv, popen, log_path, where)

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def stop(self) -> None:
        self.signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.signal(signal.SIGCONT)

    def term(self) -> None:
        self.signal(signal.SIGTERM)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def reap(self, grace: float = 0.0) -> None:
        """End the process: SIGTERM and up to `grace` seconds, then SIGKILL; always waited for."""
        if self.alive and grace > 0:
            self.cont()  # a stopped process cannot act on SIGTERM
            self.term()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        if self.alive:
            self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def log(self) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cpu_seconds(self) -> float:
        """utime + stime of this process so far, from /proc/PID/stat."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
