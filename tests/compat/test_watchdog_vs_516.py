"""hastack's watchdog against Debian's watchdog 5.16 daemon, on the same watchdog.conf, in the
same test: both run in their dry-run mode (`-q` / `--no-action`) without a device, with a
failing check, and each calls the repair binaries; the calls (programs and arguments) and the
number of repairs before giving up must be the same."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
WATCHDOG_516 = "/usr/sbin/watchdog"
RUN_SECONDS = 9.0  # long enough for retry (1 s) + 2 repairs + giving up, at interval 1

pytestmark = pytest.mark.skipif(
    not os.access(WATCHDOG_516, os.X_OK),
    reason=f"{WATCHDOG_516} is missing: install Debian's watchdog package to compare with 5.16",
)


def _run(argv: list[str], log: Path) -> None:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    try:
        time.sleep(RUN_SECONDS)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _setup(tmp: Path, name: str) -> tuple[Path, Path]:
    """A directory with a conf whose pidfile names no process, a version-0 repair binary and
    a version-1 test-directory script that fails with 42; both record their argv."""
    base = tmp / name
    (base / "watchdog.d").mkdir(parents=True)
    calls = base / "calls"
    repair = base / "repair.sh"
    repair.write_text(f'#!/bin/sh\necho "repair-binary $*" >> "{calls}"\nexit 0\n')
    repair.chmod(0o755)
    v1 = base / "watchdog.d" / "check-thing"
    v1.write_text(
        f'#!/bin/sh\nif [ "$1" = test ]; then exit 42; fi\necho "v1 $*" >> "{calls}"\nexit 0\n'
    )
    v1.chmod(0o755)
    conf = base / "watchdog.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            interval = 1
            pidfile = {base / "nobody.pid"}
            retry-timeout = 1
            repair-binary = {repair}
            repair-maximum = 2
            test-directory = {base / "watchdog.d"}
            test-timeout = 5
            log-dir = {base / "log"}
            admin =
            """
        )
    )
    return conf, calls


def _calls(path: Path, base: Path) -> list[str]:
    """The recorded calls, with the directory made neutral, each kind in order."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.replace(str(base), "BASE") for line in lines]


def test_repairs_are_called_as_5_16_calls_them(tmp_path: Path) -> None:
    conf_516, calls_516 = _setup(tmp_path, "516")
    _run([WATCHDOG_516, "-F", "-f", "-q", "-c", str(conf_516)], tmp_path / "516.log")
    conf_h, calls_h = _setup(tmp_path, "hastack")
    with conf_h.open("a") as conf:
        conf.write(f"state-dir = {tmp_path / 'hastack' / 'state'}\n")
    _run(
        [sys.executable, "-m", "hastack", "watchdog", "run", "-q", "-c", str(conf_h)],
        tmp_path / "hastack.log",
    )
    theirs = _calls(calls_516, tmp_path / "516")
    ours = _calls(calls_h, tmp_path / "hastack")
    print("5.16:", theirs, "\nhastack:", ours)
    # What each program was called with: the repair binary with ENOENT and the pidfile; the
    # v1 script as `PATH repair 42 PATH`.
    assert (
        sorted(set(ours))
        == sorted(set(theirs))
        == sorted(
            {
                "repair-binary 2 BASE/nobody.pid",
                "v1 repair 42 BASE/watchdog.d/check-thing",
            }
        )
    )
    # repair-maximum 2: two repairs that "succeed" without clearing the fault, then no more.
    for call in set(theirs):
        assert ours.count(call) == theirs.count(call) == 2, (call, ours, theirs)
    assert shutil.which("true")  # the process-table check's helper exists here too
