"""The scheduler's saved inputs: every transition's CIB, kept (bounded) so that any past
decision can be replayed exactly.

Pacemaker keeps each input of its scheduler as ``pe-input-N.bz2`` (``pe-warn-N.bz2`` when the
run had warnings, ``pe-error-N.bz2`` when it had errors) in /var/lib/pacemaker/pengine, and
operators replay them with ``crm_simulate -x FILE``. hastack keeps them the same way, under the
same names and in the same format (bzip2-compressed CIB XML), so either tool replays the
other's: ``hastack simulate -x pe-input-12.bz2`` shows the decision, ``hastack explain RSC -x
pe-input-12.bz2`` the reasons.

Each series is numbered from 0; a file ``SERIES.last`` holds the number the next input gets.
The cluster options ``pe-input-series-max``, ``pe-warn-series-max`` and ``pe-error-series-max``
bound each series (default 4000; 0 keeps none; a negative value keeps every one): when the
number reaches the bound it wraps to 0 and the oldest files are overwritten in turn, so a
series never holds more than its bound.
"""

from __future__ import annotations

import bz2
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hastack.fileio import write_atomically

__all__ = ["DEFAULT_SERIES_MAX", "SERIES", "InputStore", "SavedInput", "series_limit"]

Series = Literal["pe-input", "pe-warn", "pe-error"]
SERIES: tuple[Series, ...] = ("pe-input", "pe-warn", "pe-error")
DEFAULT_SERIES_MAX = 4000
_NAME = re.compile(r"^(pe-input|pe-warn|pe-error)-(\d+)\.bz2$")


@dataclass(frozen=True)
class SavedInput:
    series: Series
    number: int
    path: Path
    mtime: float


def series_limit(options: Mapping[str, str], series: Series) -> int:
    """The bound of a series from the cluster options (``pe-input-series-max`` ...): the
    number of files kept; -1 for no bound. An unreadable value is the default, as Pacemaker
    reads it."""
    text = options.get(f"{series}-series-max")
    if text is None:
        return DEFAULT_SERIES_MAX
    try:
        value = int(text.strip())
    except ValueError:
        return DEFAULT_SERIES_MAX
    return -1 if value < 0 else value


class InputStore:
    """The saved inputs in one directory (created when the first one is saved)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _sequence_file(self, series: Series) -> Path:
        return self.directory / f"{series}.last"

    def _next_number(self, series: Series, limit: int) -> int:
        """The number the next input of `series` gets. A missing or damaged sequence file is
        rebuilt from the newest file of the series, so a crash never makes the store
        overwrite its newest inputs."""
        try:
            number = int(self._sequence_file(series).read_text().strip())
            if number < 0:
                raise ValueError(number)
        except (OSError, ValueError):
            saved = [s for s in self.entries() if s.series == series]
            number = max(saved, key=lambda s: (s.mtime, s.number)).number + 1 if saved else 0
        return 0 if limit > 0 and number >= limit else number

    def save(
        self, cib_xml: bytes, series: Series = "pe-input", limit: int = DEFAULT_SERIES_MAX
    ) -> SavedInput | None:
        """Keep one scheduler input; None when the series keeps none (`limit` 0)."""
        if series not in SERIES:
            raise ValueError(f"unknown series {series!r}: one of {', '.join(SERIES)}")
        if limit == 0:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        number = self._next_number(series, limit)
        path = self.directory / f"{series}-{number}.bz2"
        write_atomically(path, bz2.compress(cib_xml))
        following = number + 1
        write_atomically(self._sequence_file(series), f"{following}\n".encode())
        return SavedInput(series, number, path, path.stat().st_mtime)

    def entries(self) -> list[SavedInput]:
        """Every saved input, oldest first (by the time it was written, then number)."""
        out: list[SavedInput] = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return out
        for name in names:
            match = _NAME.match(name)
            if match is None:
                continue
            path = self.directory / name
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue
            series: Series = match.group(1)  # type: ignore[assignment]
            out.append(SavedInput(series, int(match.group(2)), path, mtime))
        return sorted(out, key=lambda s: (s.mtime, s.series, s.number))

    def latest(self, series: Series = "pe-input") -> SavedInput | None:
        saved = [s for s in self.entries() if s.series == series]
        return saved[-1] if saved else None

    def load(self, saved: SavedInput | Path) -> bytes:
        """The CIB XML of a saved input."""
        path = saved.path if isinstance(saved, SavedInput) else saved
        return bz2.decompress(path.read_bytes())
