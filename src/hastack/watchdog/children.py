"""Running the user's test and repair binaries, as the watchdog 5.16 daemon runs them.

* stdin is /dev/null; stdout and stderr are appended to LOG_DIR/test-bin.stdout and
  test-bin.stderr (repair-bin.* for a repair binary). A log directory that cannot be used is
  logged and the output goes to /dev/null: a full or read-only /var must not stop the checks.
  With no log directory the child shares the daemon's own stdout and stderr (5.16 in the
  foreground).
* Each child runs in its own session, so its whole process group can be killed; descendants
  that started their own session are found through the process tree.
* The result is 5.16's code: the exit status, ECHKILL (248) when a signal killed it, ETOOLONG
  (247) when it outran its timeout (the tree is then killed with SIGKILL), or the errno of a
  failed exec (ENOENT, EACCES, ENOEXEC).

`run_child` waits for a child (a repair binary); `BackgroundTest` runs a test binary without
blocking the loop, as 5.16's check_bin does: the result of one run is reported by the next
check, 245 ("don't know") meanwhile, and a test still running is not started a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Literal

import psutil

from hastack.watchdog import codes

log = logging.getLogger(__name__)

Kind = Literal["test", "repair"]
LOG_STEMS: dict[str, str] = {"test": "test-bin", "repair": "repair-bin"}
REAP_GRACE = 5.0  # seconds to wait for a SIGKILLed child before leaving it to be reaped later

# Log directory problems already reported: the loop runs children every interval, and one
# warning per distinct problem is enough.
_reported: set[str] = set()


def log_paths(log_dir: str, kind: Kind) -> tuple[str, str]:
    """Where a child's stdout and stderr go (5.16's reopenstd.c names)."""
    stem = LOG_STEMS[kind]
    return os.path.join(log_dir, f"{stem}.stdout"), os.path.join(log_dir, f"{stem}.stderr")


def _warn_once(message: str) -> None:
    if message not in _reported:
        _reported.add(message)
        log.warning("%s", message)


def _open_output(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    except OSError as e:
        _warn_once(f"cannot open {path} for child output ({e.strerror}); using /dev/null")
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


@contextlib.contextmanager
def _outputs(log_dir: str | None, kind: Kind) -> Iterator[tuple[int | None, int | None]]:
    """The stdout and stderr for a child: file descriptors, closed once it has started."""
    if kind not in LOG_STEMS:
        raise ValueError(f"child kind must be 'test' or 'repair', not {kind!r}")
    if log_dir is None:
        yield None, None
        return
    try:
        os.makedirs(log_dir, mode=0o750, exist_ok=True)
    except OSError as e:
        _warn_once(f"cannot create log-dir {log_dir} ({e.strerror}); child output is discarded")
    out_path, err_path = log_paths(log_dir, kind)
    out = _open_output(out_path)
    try:
        err = _open_output(err_path)
    except BaseException:
        os.close(out)
        raise
    try:
        yield out, err
    finally:
        os.close(out)
        os.close(err)


def _executable(argv: list[str]) -> str:
    # 5.16 uses execv: a name without a slash is relative to the working directory, not
    # looked up in PATH (which Popen would do).
    path = argv[0]
    return path if "/" in path else os.path.join(".", path)


def _code(returncode: int) -> int:
    return codes.ECHKILL if returncode < 0 else returncode


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _signal_tree(pid: int, procs: list[psutil.Process], sig: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, sig)
    for proc in procs:
        # psutil checks the process is still the one listed (no PID reuse)
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def kill_tree(pid: int) -> None:
    """SIGKILL the process group `pid` leads and every descendant of `pid`, including those
    that left the group. The tree is stopped first so that nothing forks between listing it
    and killing it."""
    tree = _descendants(pid)
    _signal_tree(pid, tree, signal.SIGSTOP)
    seen = {p.pid for p in tree}
    tree += [p for p in _descendants(pid) if p.pid not in seen]
    _signal_tree(pid, tree, signal.SIGKILL)


async def run_child(argv: list[str], timeout: float, log_dir: str | None, kind: Kind) -> int:
    """Run `argv` to its end (or `timeout` seconds; 0: no limit) and return 5.16's code."""
    if not argv:
        raise ValueError("run_child needs a program to run")
    with _outputs(log_dir, kind) as (out, err):
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                executable=_executable(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,  # never hand the watchdog device (or a socket) to a child
            )
        except OSError as e:
            log.error("cannot run %s binary %s: %s", kind, argv[0], e.strerror)
            return e.errno or errno.ECHILD
    try:
        returncode = await asyncio.wait_for(proc.wait(), timeout or None)
    except TimeoutError:
        log.error("%s binary %s (pid %d) ran over %gs; killed", kind, argv[0], proc.pid, timeout)
        kill_tree(proc.pid)
        try:
            await asyncio.wait_for(proc.wait(), REAP_GRACE)
        except TimeoutError:
            # SIGKILL does not end a process stuck in the kernel; the child watcher reaps it
            # when it finally goes.
            log.error("%s binary %s (pid %d) did not die", kind, argv[0], proc.pid)
        return codes.ETOOLONG
    except BaseException:
        # Cancelled (the daemon is stopping): leave nothing behind.
        kill_tree(proc.pid)
        raise
    if returncode < 0:
        log.error("%s binary %s was killed by signal %d", kind, argv[0], -returncode)
    elif returncode:
        log.info(
            "%s binary %s returned %d (%s)", kind, argv[0], returncode, codes.describe(returncode)
        )
    return _code(returncode)


class BackgroundTest:
    """One test binary run in the background: `check(now)` each interval is 5.16's check_bin
    (report the last run's result, or 245 while it runs, and start the next run). `start` and
    `poll` are its two halves. Never blocks: a killed child is reaped on a later call."""

    def __init__(
        self, argv: list[str], timeout: float, log_dir: str | None, kind: Kind = "test"
    ) -> None:
        if not argv:
            raise ValueError("BackgroundTest needs a program to run")
        self.argv = list(argv)
        self.timeout = timeout
        self.log_dir = log_dir
        self.kind = kind
        self.started: float | None = None  # when the running child was started
        self._proc: subprocess.Popen[bytes] | None = None
        self._result: int | None = None  # a finished run's code, not yet reported
        self._dying: list[subprocess.Popen[bytes]] = []  # killed, not yet reaped

    @property
    def running(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, now: float) -> bool:
        """Start a run unless one is running; False when it was running already."""
        if self._proc is not None:
            return False
        with _outputs(self.log_dir, self.kind) as (out, err):
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    executable=_executable(self.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as e:
                # 5.16's child exits with the errno, reported by the next check: same here.
                log.error("cannot run %s binary %s: %s", self.kind, self.argv[0], e.strerror)
                self._result = e.errno or errno.ECHILD
                return True
        self.started = now
        return True

    def _reap(self) -> None:
        self._dying = [p for p in self._dying if p.poll() is None]

    def poll(self, now: float) -> int:
        """The finished run's code (once), 245 while it runs or when nothing ran; ETOOLONG
        once a run outlives the timeout (0: no limit), after killing its tree."""
        self._reap()
        proc = self._proc
        if proc is not None and self._result is None:
            returncode = proc.poll()
            if returncode is not None:
                self._proc = None
                self._result = _code(returncode)
                if returncode < 0:
                    log.error("test binary %s was killed by signal %d", self.argv[0], -returncode)
            elif (
                self.timeout > 0 and self.started is not None and now - self.started > self.timeout
            ):
                log.error(
                    "test binary %s (pid %d) exceeded test-timeout %gs; killed",
                    self.argv[0],
                    proc.pid,
                    self.timeout,
                )
                kill_tree(proc.pid)
                self._proc = None
                self._dying.append(proc)
                self._reap()
                self._result = codes.ETOOLONG
        if self._result is not None:
            result, self._result = self._result, None
            return result
        return codes.EDONTKNOW

    def check(self, now: float) -> int:
        """5.16's check_bin: the last run's result (245 if none yet), and a new run started
        unless one is still going."""
        result = self.poll(now)
        if not self.running:
            self.start(now)
        return result

    def stop(self, grace: float = REAP_GRACE) -> None:
        """Kill a running test (the daemon is stopping) and reap what can be reaped within
        `grace` seconds (this one may block, for at most that long)."""
        if self._proc is not None:
            kill_tree(self._proc.pid)
            self._dying.append(self._proc)
            self._proc = None
        for proc in self._dying:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        self._reap()
