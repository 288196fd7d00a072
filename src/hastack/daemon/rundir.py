"""A node's state directory, `run_dir/NODE/`, so several nodes can share one run_dir.

lock          fcntl.flock'ed by the running daemon: a second one for the node refuses to start
generation    the node's generation, bumped (atomically) at every start
pid           the running daemon's pid
control.sock  the control socket (`hastack status` talks to it)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class AlreadyRunning(Exception):
    """Another daemon holds the node's lock."""


class NodeRunDir:
    def __init__(self, run_dir: str | os.PathLike[str], node: str) -> None:
        self.path = Path(run_dir) / node
        self.node = node
        self._lock_fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.path / "lock"

    @property
    def generation_path(self) -> Path:
        return self.path / "generation"

    @property
    def pid_path(self) -> Path:
        return self.path / "pid"

    @property
    def control_path(self) -> Path:
        return self.path / "control.sock"

    def create(self) -> None:
        self.path.mkdir(mode=0o750, parents=True, exist_ok=True)

    def lock(self) -> None:
        """Take the node's lock or raise AlreadyRunning (naming the running pid if known)."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = self.read_pid()
            who = f" (pid {pid})" if pid else ""
            raise AlreadyRunning(
                f"a hastack node daemon for node {self.node!r} is already running{who}; "
                f"it holds {self.lock_path}"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        # The lock file itself stays: removing it would let a third daemon lock a new inode
        # while a second one still waits on the old.
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read_generation(self) -> int:
        try:
            return int(self.generation_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def bump_generation(self) -> int:
        """Persist and return the previous generation + 1 (write tmp, fsync, rename, fsync dir).

        A crash at any point leaves either the old or the new number, never a torn file, so a
        restarted node never reuses a generation its peers have already seen.
        """
        generation = self.read_generation() + 1
        self._write_atomically(self.generation_path, f"{generation}\n")
        return generation

    def write_pid(self) -> None:
        self._write_atomically(self.pid_path, f"{os.getpid()}\n")

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def cleanup(self) -> None:
        """Remove what only a running daemon should leave behind, then release the lock."""
        for path in (self.control_path, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.unlock()

    def _write_atomically(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
