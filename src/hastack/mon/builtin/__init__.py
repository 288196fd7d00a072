"""hastack's built-in mon monitors and alerts, in pure Python (no external tools), runnable as
mon monitor and alert scripts, and :func:`install_scripts` to put wrappers for them in a
mon.d and an alert.d directory."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from hastack.fileio import write_atomically

MONITORS = ("ping", "tcp", "http", "https", "dns", "smtp", "freespace", "processes", "filechange")
ALERTS = ("file", "mail", "trap", "cluster")
MARKER = "# written by hastack mon install-monitors"


class InstallError(Exception):
    """A wrapper could not be written; the message names the file."""


def _wrapper(module: str, name: str, python: str) -> bytes:
    return (
        f"#!/bin/sh\n{MARKER}: hastack's built-in {name} ({module})\n"
        f'exec {shlex.quote(python)} -m {module} {name} "$@"\n'
    ).encode()


def install_scripts(mondir: Path, alertdir: Path, python: str | None = None) -> list[Path]:
    """Write `hastack-NAME.monitor` into `mondir` and `hastack-NAME.alert` into `alertdir`
    (mode 0755), each running this Python (`python`, default the running interpreter, i.e. the
    venv's) on the module. A file of that name that hastack did not write is left alone and
    refused (InstallError); ours are replaced. Returns the files written."""
    interpreter = python or sys.executable
    plan: list[tuple[Path, bytes]] = []
    for name in MONITORS:
        wrapper = _wrapper("hastack.mon.builtin.monitors", name, interpreter)
        plan.append((mondir / f"hastack-{name}.monitor", wrapper))
    for name in ALERTS:
        wrapper = _wrapper("hastack.mon.builtin.alerts", name, interpreter)
        plan.append((alertdir / f"hastack-{name}.alert", wrapper))
    for directory in (mondir, alertdir):
        if not directory.is_dir():
            raise InstallError(f"{directory}: not a directory")
    for path, _ in plan:  # check all before writing any: all or nothing
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InstallError(f"{path}: {exc.strerror or exc}") from None
        if MARKER.encode() not in current:
            raise InstallError(f"{path} exists and was not written by hastack: not replaced")
    written = []
    for path, data in plan:
        try:
            write_atomically(path, data, mode=0o755)
        except OSError as exc:
            raise InstallError(f"{path}: {exc.strerror or exc}") from None
        written.append(path)
    return written
