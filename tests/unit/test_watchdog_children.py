"""Test and repair binaries run for real: shell scripts written to a temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hastack.watchdog import codes
from hastack.watchdog.children import BackgroundTest, run_child
from hastack.watchdog.sequencer import Repair, Sequencer

PR_SET_CHILD_SUBREAPER = 36


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def run(argv: list[str], timeout: float = 5, log_dir: str | None = None, kind="test") -> int:
    return asyncio.run(run_child(argv, timeout, log_dir, kind))


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid)


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make this process adopt orphans, so that a killed grandchild becomes our child and its
    end can be seen (and reaped) here whatever the machine's init does."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")
    before = {p.pid for p in psutil.Process().children()}
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        # reap anything adopted that the test did not (it would outlive us as a zombie)
        for orphan in psutil.Process().children():
            if orphan.pid not in before:
                with contextlib.suppress(psutil.Error):
                    orphan.kill()
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(orphan.pid, 0)


def reap_killed(pid: int, timeout: float = 5.0) -> int:
    """Wait for an adopted orphan to end; its signal number."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = 0, 0  # not adopted yet
        if done:
            assert os.WIFSIGNALED(status), f"pid {pid} ended with status {status:#x}"
            return os.WTERMSIG(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # do not leave it behind
            raise AssertionError(f"pid {pid} still alive {timeout}s after the timeout")
        time.sleep(0.02)


def test_exit_status_is_the_result(tmp_path: Path) -> None:
    assert run([script(tmp_path, "ok", "exit 0\n")]) == 0
    assert run([script(tmp_path, "three", "exit 3\n")]) == 3
    assert run([script(tmp_path, "user", "exit 246\n")]) == codes.EUSERVALUE


def test_killed_by_a_signal_is_echkill(tmp_path: Path) -> None:
    assert run([script(tmp_path, "suicide", "kill -TERM $$\nsleep 5\n")]) == codes.ECHKILL


def test_missing_or_not_executable_binary_is_its_errno(tmp_path: Path) -> None:
    assert run([str(tmp_path / "nothere")]) == errno.ENOENT
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\nexit 0\n")
    plain.chmod(0o644)
    if os.geteuid() == 0 and os.access(plain, os.X_OK):
        pytest.skip("this root can execute a 0644 file")
    assert run([str(plain)]) == errno.EACCES


def test_timeout_kills_the_whole_tree(tmp_path: Path, subreaper: None) -> None:
    pids = tmp_path / "pids"
    hang = script(
        tmp_path,
        "hang",
        # one grandchild stays in the group, the other leaves it with a session of its own
        f"sleep 60 & echo $! >> {pids}\nsetsid sleep 60 & echo $! >> {pids}\n"
        f"echo $$ >> {pids}\nwait\n",
    )
    started = time.monotonic()
    assert run([hang], timeout=1) == codes.ETOOLONG
    assert time.monotonic() - started < 4
    in_group, own_session, test_pid = (int(p) for p in pids.read_text().split())
    assert gone(test_pid), "the test binary was not reaped"
    assert reap_killed(in_group) == signal.SIGKILL
    assert reap_killed(own_session) == signal.SIGKILL


def test_own_session_and_stdin_from_dev_null(tmp_path: Path) -> None:
    out = tmp_path / "out"
    probe = script(
        tmp_path,
        "probe",
        f"readlink /proc/self/fd/0 > {out}\nps -o sid= -p $$ >> {out}\necho $$ >> {out}\n",
    )
    assert run([probe]) == 0
    stdin, sid, pid = out.read_text().split()
    assert stdin == "/dev/null"
    assert sid == pid


def test_repair_binary_gets_the_sequencer_arguments_and_logs_its_output(tmp_path: Path) -> None:
    args = tmp_path / "args"
    log_dir = tmp_path / "log" / "watchdog"  # created on demand
    repair = script(
        tmp_path,
        "repair",
        f'printf "%s|" "$0" "$@" > {args}\necho "out $1"\necho "err $1" >&2\nexit 0\n',
    )
    seq = Sequencer(retry_timeout=0, repair_maximum=0, repair_binary=repair)
    for code in (errno.ESRCH, errno.EIO):
        decision = seq.judge(0, "pidfile", "/run/x.pid", code)
        assert isinstance(decision, Repair)
        assert run(decision.argv, log_dir=str(log_dir), kind="repair") == 0
        assert args.read_text() == f"{repair}|{code}|/run/x.pid|"
    # appended, with 5.16's names
    assert (log_dir / "repair-bin.stdout").read_text() == f"out {errno.ESRCH}\nout {errno.EIO}\n"
    assert (log_dir / "repair-bin.stderr").read_text() == f"err {errno.ESRCH}\nerr {errno.EIO}\n"
    assert not (log_dir / "test-bin.stdout").exists()


def test_test_output_goes_to_test_bin_files(tmp_path: Path) -> None:
    chatty = script(tmp_path, "chatty", "echo hello\necho oops >&2\nexit 1\n")
    assert run([chatty], log_dir=str(tmp_path), kind="test") == 1
    assert (tmp_path / "test-bin.stdout").read_text() == "hello\n"
    assert (tmp_path / "test-bin.stderr").read_text() == "oops\n"


def test_unusable_log_dir_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log_dir = blocker / "watchdog"  # under a regular file: cannot be created
    caplog.set_level(logging.WARNING, logger="hastack.watchdog.children")
    assert run([script(tmp_path, "seven", "echo x\nexit 7\n")], log_dir=str(log_dir)) == 7
    assert f"cannot create log-dir {log_dir}" in caplog.text


def test_background_test_reports_245_while_running_then_its_code(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    slow = script(tmp_path, "slow", f"echo run >> {runs}\nsleep 0.6\nexit 7\n")
    test = BackgroundTest([slow], timeout=5, log_dir=None)
    try:
        assert test.check(time.monotonic()) == codes.EDONTKNOW  # nothing ran yet; starts one
        first = test.pid
        assert first is not None and test.running
        assert os.getsid(first) == first
        assert test.check(time.monotonic()) == codes.EDONTKNOW  # still running
        assert test.start(time.monotonic()) is False
        assert test.pid == first
        assert wait_for(lambda: psutil.Process(first).status() == psutil.STATUS_ZOMBIE)
        assert test.check(time.monotonic()) == 7  # the result, and the next run starts
        assert test.pid not in (None, first)
        assert gone(first)
        # the second run ends too; poll (unlike check) starts nothing new
        assert wait_for(lambda: test.poll(time.monotonic()) == 7)
        assert not test.running
    finally:
        test.stop()
    assert runs.read_text() == "run\nrun\n"  # never two at once: exactly two runs


def test_background_test_times_out_and_kills_its_tree(tmp_path: Path, subreaper: None) -> None:
    pids = tmp_path / "pids"
    hang = script(
        tmp_path, "hang", f"setsid sleep 60 & echo $! >> {pids}\necho $$ >> {pids}\nwait\n"
    )
    test = BackgroundTest([hang], timeout=0.5, log_dir=None)
    try:
        start = time.monotonic()
        assert test.start(start)
        assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
        grandchild, pid = (int(p) for p in pids.read_text().split())
        assert test.poll(start + 0.5) == codes.EDONTKNOW  # not *over* the timeout yet
        assert test.poll(start + 0.6) == codes.ETOOLONG
        assert not test.running
        assert test.poll(start + 0.7) == codes.EDONTKNOW  # reported once
        # the killed test is reaped by later polls, without blocking any of them
        assert wait_for(lambda: (test.poll(time.monotonic()), gone(pid))[1])
        assert reap_killed(grandchild) == signal.SIGKILL
    finally:
        test.stop()


def test_background_test_signal_and_exec_failure(tmp_path: Path) -> None:
    killed = BackgroundTest([script(tmp_path, "suicide", "kill -KILL $$\n")], 5, None)
    try:
        assert killed.start(time.monotonic())
        pid = killed.pid
        assert pid is not None
        assert wait_for(lambda: psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
        assert killed.poll(time.monotonic()) == codes.ECHKILL
    finally:
        killed.stop()
    missing = BackgroundTest([str(tmp_path / "nothere")], 5, None)
    # as 5.16: the failed start is reported by the next check
    assert missing.check(0) == codes.EDONTKNOW
    assert missing.check(1) == errno.ENOENT


def test_background_test_version_1_argument_and_log_files(tmp_path: Path) -> None:
    v1 = script(tmp_path, "v1", 'echo "called with $1"\nexit 0\n')
    test = BackgroundTest([v1, "test"], timeout=5, log_dir=str(tmp_path / "logs"))
    try:
        test.start(time.monotonic())
        assert wait_for(lambda: test.poll(time.monotonic()) == 0)
    finally:
        test.stop()
    assert (tmp_path / "logs" / "test-bin.stdout").read_text() == "called with test\n"
