"""`hastack watchdog check|status|softdog` from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def hastack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hastack", "watchdog", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )


def test_check_says_what_the_daemon_would_watch(tmp_path: Path) -> None:
    tests = tmp_path / "watchdog.d"
    tests.mkdir()
    (tests / "db-check").write_text("#!/bin/sh\nexit 0\n")
    (tests / "db-check").chmod(0o755)
    conf = tmp_path / "watchdog.conf"
    conf.write_text(
        f"watchdog-device = /dev/watchdog\nwatchdog-timeout = 15\nmax-load-1 = 24\n"
        f"file = /var/log/syslog\nchange = 1407\npidfile = /run/x.pid\nping = 192.0.2.1\n"
        f"test-directory = {tests}\n"
    )
    out = hastack("check", "-c", str(conf))
    assert out.returncode == 0, out.stderr
    assert "device /dev/watchdog, timeout 15 s" in out.stdout
    assert "load average at most 24 / 18 / 12" in out.stdout  # 3/4 and 1/2 derived
    assert "file /var/log/syslog exists, changed within 1407 s" in out.stdout
    assert f"test {tests / 'db-check'} test (test-directory)" in out.stdout


def test_check_refuses_a_repair_binary_that_cannot_run(tmp_path: Path) -> None:
    conf = tmp_path / "watchdog.conf"
    conf.write_text(f"repair-binary = {tmp_path / 'missing'}\n")
    out = hastack("check", "-c", str(conf))
    assert out.returncode == 1
    assert f"repair-binary {tmp_path / 'missing'} is not an executable file" in out.stderr


def test_the_sanity_checks_need_force(tmp_path: Path) -> None:
    conf = tmp_path / "watchdog.conf"
    conf.write_text("watchdog-timeout = 5\ninterval = 4\n")
    refused = hastack("check", "-c", str(conf))
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert hastack("check", "-c", str(conf), "--force").returncode == 0


def test_status_without_a_daemon_says_so_and_exits_3(tmp_path: Path) -> None:
    out = hastack("status", "--state-dir", str(tmp_path))
    assert out.returncode == 3
    assert "not running" in out.stdout and "last reset: none recorded" in out.stdout


def test_softdog_through_hastack(tmp_path: Path) -> None:
    sock = tmp_path / "softdog.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "hastack", "watchdog", "softdog", "serve", "--socket", str(sock)],
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline, "the responder did not start"
            time.sleep(0.05)
        assert hastack("softdog", "test", "--socket", str(sock)).returncode == 0
        repair = hastack("softdog", "repair", "42", "/x", "--socket", str(sock))
        assert repair.returncode == 42  # it cannot repair: the watchdog acts
    finally:
        server.terminate()
        assert server.wait(20) == 0
    assert not sock.exists()
    gone = hastack("softdog", "test", "--socket", str(sock))
    assert gone.returncode == 2  # ENOENT: no responder
