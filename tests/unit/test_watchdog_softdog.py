"""The softdog: a lowest-priority responder (a real process) and the watchdog test that probes
it, late when the responder is stopped, wrong against a fake, refused when it is gone."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.watchdog import codes
from hastack.watchdog.softdog import MAX_LINE, probe, reply

START_TIMEOUT = 10.0
OK_TIMEOUT = 5.0  # the responder is SCHED_IDLE: other tests on this machine may delay it
Responder = tuple[subprocess.Popen[bytes], Path]  # the process and its socket


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # A short directory: a unix socket's path is limited to 107 bytes, tmp_path may be longer.
    path = Path(tempfile.mkdtemp(prefix="softdog-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hastack.watchdog.softdog", *args]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)  # a stopped process would not die of SIGKILL alone
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()


def _start(path: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(_command("serve", "--socket", str(path)), stderr=subprocess.PIPE)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"the responder exited with {proc.returncode}: {err}")
            if path.exists() and probe(str(path), 1.0)[0] == 0:
                return proc
            if time.monotonic() > deadline:
                raise AssertionError(f"the responder did not answer on {path} in time")
            time.sleep(0.05)
    except BaseException:
        _stop(proc)
        raise


@pytest.fixture
def responder(sock_dir: Path) -> Iterator[Responder]:
    path = sock_dir / "softdog.sock"
    proc = _start(path)
    try:
        yield proc, path
    finally:
        _stop(proc)


def _exchange(path: Path, data: bytes) -> bytes:
    """Send data and read until the responder closes or a second passes without more."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(OK_TIMEOUT)
        client.connect(str(path))
        client.sendall(data)
        received = b""
        while chunk := client.recv(4096):
            received += chunk
        return received


# ---- the protocol -------------------------------------------------------------------------


def test_reply_answers_n_plus_one_and_refuses_anything_else() -> None:
    assert reply(b"41") == (b"42\n", True)
    assert reply(b"-1\r") == (b"0\n", True)
    assert reply(b"%d" % (2**63 - 1)) == (b"%d\n" % 2**63, True)
    for bad in (b"", b"abc", b"1.5", b"0x10", b"1 2", b"9" * (MAX_LINE + 1)):
        answer, keep = reply(bad)
        assert answer.startswith(b"ERR ") and answer.endswith(b"\n"), bad
        assert keep is False, bad


# ---- the responder ------------------------------------------------------------------------


def test_a_live_responder_answers_the_probe(responder: Responder) -> None:
    _, path = responder
    code, why = probe(str(path), OK_TIMEOUT)
    assert code == 0, why
    assert why.startswith("answered in ") and why.endswith(" ms")


def test_the_responder_runs_at_nice_19_and_sched_idle_on_a_0600_socket(
    responder: Responder,
) -> None:
    proc, path = responder
    assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 19
    assert os.sched_getscheduler(proc.pid) == os.SCHED_IDLE
    mode = path.lstat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_the_responder_answers_several_lines_and_several_connections(
    responder: Responder,
) -> None:
    _, path = responder
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.settimeout(OK_TIMEOUT)
        slow.connect(str(path))
        slow.sendall(b"1\n2\n12")  # two lines and half of a third
        assert _read_lines(slow, 2) == b"2\n3\n"
        # a connection left half-way does not hold up the others
        code, why = probe(str(path), OK_TIMEOUT)
        assert code == 0, why
        slow.sendall(b"\n")
        assert _read_lines(slow, 1) == b"13\n"


def _read_lines(sock: socket.socket, count: int) -> bytes:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_garbage_gets_err_and_the_responder_keeps_serving(
    responder: Responder,
) -> None:
    proc, path = responder
    answer = _exchange(path, b"hello\n5\n")
    assert answer.startswith(b"ERR not a decimal integer") and answer.count(b"\n") == 1
    assert _exchange(path, b"7" * (MAX_LINE + 10)).startswith(b"ERR request line longer")
    assert proc.poll() is None
    code, why = probe(str(path), OK_TIMEOUT)
    assert code == 0, why


def test_a_stopped_responder_is_late_within_the_timeout_and_answers_again_when_continued(
    responder: Responder,
) -> None:
    proc, path = responder
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        code, why = probe(str(path), 0.5)
        elapsed = time.monotonic() - start
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert code == codes.ETOOLONG, why
    assert "no answer within 0.5 s" in why
    assert 0.45 <= elapsed < 2.0
    code, why = probe(str(path), OK_TIMEOUT)
    assert code == 0, why


def test_a_killed_responder_is_refused_then_missing(
    responder: Responder,
) -> None:
    proc, path = responder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert path.exists()  # killed: no chance to remove its socket
    assert probe(str(path), 1.0)[0] == errno.ECONNREFUSED
    path.unlink()
    code, why = probe(str(path), 1.0)
    assert code == errno.ENOENT and str(path) in why


def test_a_new_responder_replaces_a_stale_socket(sock_dir: Path) -> None:
    path = sock_dir / "softdog.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # bound, never listened: what a killed responder leaves
    assert probe(str(path), 1.0)[0] == errno.ECONNREFUSED
    proc = _start(path)
    try:
        assert probe(str(path), OK_TIMEOUT)[0] == 0
    finally:
        _stop(proc)


def test_a_second_responder_refuses_a_live_socket_and_a_non_socket(
    responder: Responder, sock_dir: Path
) -> None:
    _, path = responder
    second = subprocess.run(
        _command("serve", "--socket", str(path)), capture_output=True, timeout=30
    )
    assert second.returncode == 1
    assert f"{path}: another responder is live" in second.stderr.decode()
    assert probe(str(path), OK_TIMEOUT)[0] == 0  # the first one's socket was left alone

    regular = sock_dir / "not-a-socket"
    regular.write_text("keep me\n")
    third = subprocess.run(
        _command("serve", "--socket", str(regular)), capture_output=True, timeout=30
    )
    assert third.returncode == 1
    assert f"{regular}: exists and is not a socket" in third.stderr.decode()
    assert regular.read_text() == "keep me\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_removes_the_socket_and_exits_0(responder: Responder, signum: int) -> None:
    proc, path = responder
    os.kill(proc.pid, signum)
    assert proc.wait(timeout=10) == 0
    assert not path.exists()


# ---- the probe against a fake responder ---------------------------------------------------


def _fake_responder(path: Path, answer: str) -> threading.Thread:
    """A one-shot server: answers `wrong` (value+2), `err` or `close` (no answer)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(OK_TIMEOUT)

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            line = conn.recv(64).split(b"\n")[0]
            if answer == "wrong":
                conn.sendall(b"%d\n" % (int(line) + 2))
            elif answer == "err":
                conn.sendall(b"ERR no\n")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("answer", "expected", "text"),
    [
        ("wrong", codes.EUSERVALUE, "expected"),
        ("err", codes.EUSERVALUE, "got 'ERR no'"),
        ("close", errno.ECONNRESET, "closed without answering"),
    ],
)
def test_a_wrong_or_missing_answer_fails_the_probe(
    sock_dir: Path, answer: str, expected: int, text: str
) -> None:
    path = sock_dir / "fake.sock"
    thread = _fake_responder(path, answer)
    code, why = probe(str(path), OK_TIMEOUT)
    thread.join(timeout=OK_TIMEOUT)
    assert not thread.is_alive()
    assert code == expected, why
    assert text in why


# ---- the command --------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(*args), capture_output=True, text=True, timeout=30)


def test_the_test_command_exits_with_the_probes_code(responder: Responder, sock_dir: Path) -> None:
    proc, path = responder
    ok = _run("test", "--socket", str(path), "--timeout", str(OK_TIMEOUT))
    assert ok.returncode == 0 and "softdog: ok: answered in" in ok.stderr

    os.kill(proc.pid, signal.SIGSTOP)
    try:
        late = _run("test", "--socket", str(path), "--timeout", "0.3")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert late.returncode == codes.ETOOLONG and "timed out" in late.stderr

    missing = _run("test", "--socket", str(sock_dir / "nothing.sock"))
    assert missing.returncode == errno.ENOENT and "ENOENT" in missing.stderr

    bad = _run("test", "--socket", str(path), "--timeout", "0")
    assert bad.returncode == errno.EINVAL and "--timeout must be above 0" in bad.stderr


def test_repair_does_not_repair_it_returns_the_error() -> None:
    # 5.16 calls a test-directory executable as `PATH repair ERRNO PATH`
    failed = _run("repair", str(codes.ETOOLONG), "/etc/watchdog.d/softdog")
    assert failed.returncode == codes.ETOOLONG
    assert "cannot repair timed out (/etc/watchdog.d/softdog)" in failed.stderr
    # options a wrapper passes to every call are accepted
    assert _run("repair", "111", "x", "--socket", "/nowhere", "--timeout", "3").returncode == 111
    # 0 (or a code beyond 8 bits) must not exit as a success
    assert _run("repair", "0", "x").returncode == codes.EUSERVALUE
    assert _run("repair", "256", "x").returncode == codes.EUSERVALUE
