"""The node's event history: every `ClusterEvent` (and transition summary), one JSON line each.

Files, in ``run_dir/NODE/``::

    history.jsonl      the current file, appended to
    history.jsonl.1    the previous one ... up to history.jsonl.KEEP (the oldest)

When appending a line would take the current file past ``max_bytes`` it is rotated (renamed to
``.1``, the others shifted, the oldest removed), so the history never holds more than about
``(keep + 1) * max_bytes``. A crash in the middle of a write leaves a torn last line: the writer
starts its next line on a fresh line, and the reader skips (and counts) lines it cannot read,
so one torn line never hides the rest.

Writing never raises: the history is for people looking back, and the daemon must not stop
because its disk is full. A failure is logged once (and its end once).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from hastack.crm.events import ClusterEvent, EventError
from hastack.transport.logevents import emit

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_KEEP = 4


class EventHistory:
    """Appends events to ``directory/history.jsonl`` with size-based rotation.

    ``keep`` rotated files are kept besides the current one; ``fsync`` makes every append
    durable before it returns (off by default: the log has the same lines, and an fsync per
    event would slow the failover path).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
        fsync: bool = False,
        logger: logging.Logger = log,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
        if keep < 0:
            raise ValueError(f"keep must be >= 0, not {keep}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync = fsync
        self._logger = logger
        self._fd: int | None = None
        self._size = 0
        self._failing = False

    @property
    def path(self) -> Path:
        return self.directory / HISTORY_FILE

    def rotated_path(self, index: int) -> Path:
        return self.directory / f"{HISTORY_FILE}.{index}"

    def append(self, event: ClusterEvent) -> bool:
        """Append `event` as one line; False (and a logged warning) when it could not be."""
        try:
            line = (event.to_json() + "\n").encode()
        except EventError as exc:
            emit(self._logger, "warning", "history-bad-event", str(exc), {"seq": event.seq})
            return False
        try:
            if self._fd is None:
                self._open()
            if self._size > 0 and self._size + len(line) > self.max_bytes:
                self._rotate()
            assert self._fd is not None
            self._write(line)
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._close_fd()
            if not self._failing:
                self._failing = True
                emit(
                    self._logger,
                    "warning",
                    "history-write-failed",
                    f"cannot write the event history {self.path}: {exc.strerror or exc}; "
                    "events are still logged",
                    {"seq": event.seq},
                )
            return False
        if self._failing:
            self._failing = False
            emit(self._logger, "info", "history-write-ok", f"writing {self.path} again", {})
        return True

    def close(self) -> None:
        self._close_fd()

    def __enter__(self) -> EventHistory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                # A torn last line (a crash mid-write): end it, so our first line is whole.
                os.write(fd, b"\n")
                size += 1
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size = fd, size

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def _rotate(self) -> None:
        self._close_fd()
        if self.keep == 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            for index in range(self.keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.rotated_path(index), self.rotated_path(index + 1))
            os.replace(self.path, self.rotated_path(1))
        self._open()

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class HistoryRead:
    """The events read (oldest first, as appended), and how many lines could not be read
    (torn by a crash, or damaged), with the first few reasons."""

    events: tuple[ClusterEvent, ...]
    unreadable: int = 0
    problems: tuple[str, ...] = ()


def history_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The history files present, newest first (the current file, then .1, .2, ...)."""
    base = Path(directory)
    rotated: list[tuple[int, Path]] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in base.iterdir():
            suffix = entry.name[len(HISTORY_FILE) + 1 :]
            if entry.name.startswith(HISTORY_FILE + ".") and suffix.isdigit():
                rotated.append((int(suffix), entry))
    current = base / HISTORY_FILE
    return ([current] if current.exists() else []) + [p for _, p in sorted(rotated)]


def matches(
    event: ClusterEvent,
    *,
    since: float | None = None,
    until: float | None = None,
    node: str | None = None,
    resource: str | None = None,
    kinds: Collection[str] | None = None,
) -> bool:
    """Whether `event` is in [since, until] and about `node`/`resource`/of one of `kinds`."""
    if since is not None and event.time < since:
        return False
    if until is not None and event.time > until:
        return False
    if node is not None and event.node != node:
        return False
    if resource is not None and event.resource != resource:
        return False
    return kinds is None or event.kind in kinds


def _lines(data: bytes) -> Iterator[bytes]:
    for line in data.split(b"\n"):
        if line.strip():
            yield line


def read_history(
    directory: str | os.PathLike[str],
    *,
    since: float | None = None,
    until: float | None = None,
    node: str | None = None,
    resource: str | None = None,
    kinds: Collection[str] | None = None,
) -> HistoryRead:
    """The events of the history in `directory` that pass the filters (see `matches`).

    All files are opened (newest first, each inode once) before any is read, so a rotation
    while reading neither loses nor repeats lines. Raises OSError only for files that cannot be
    read (permissions); a missing history is simply empty.
    """
    seen: set[tuple[int, int]] = set()
    with contextlib.ExitStack() as stack:
        files = []
        for path in history_files(directory):
            try:
                f = stack.enter_context(open(path, "rb"))
            except FileNotFoundError:  # rotated away between listing and opening
                continue
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                files.append(f)
        opened = [f.read() for f in files]
    events: list[ClusterEvent] = []
    unreadable = 0
    problems: list[str] = []
    for data in reversed(opened):  # oldest first
        for raw in _lines(data):
            try:
                event = ClusterEvent.from_json(raw)
            except EventError as exc:
                unreadable += 1
                if len(problems) < 5:
                    problems.append(str(exc))
                continue
            if matches(event, since=since, until=until, node=node, resource=resource, kinds=kinds):
                events.append(event)
    return HistoryRead(tuple(events), unreadable, tuple(problems))
