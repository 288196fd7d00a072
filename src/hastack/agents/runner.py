"""Run one agent invocation as a subprocess: the thin asyncio shell under the executor.

The agent runs in its own session and process group, so that a timeout can kill everything it
started; stdin is /dev/null and stdout+stderr go into one pipe, read as it comes, of which only
the last `OUTPUT_LIMIT` bytes are kept. Nothing the agent does raises here: exec failures,
timeouts and deaths by signal all become an `OpResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable

from hastack.agents.invocation import Invocation, interpret
from hastack.agents.rc import ExecStatus, OcfRc, OpResult

OUTPUT_LIMIT = 4096  # bytes of output kept: the end, where the reason for a failure usually is
EXIT_REASON_PREFIX = "ocf-exit-reason:"
EXIT_REASON_LIMIT = 1024
# After the agent exits, how long to wait for the end of its output. A child it left behind
# (a daemon that did not close its stdout) keeps the pipe open forever; we stop reading then.
DRAIN_AFTER_EXIT = 0.5


class _OutputCollector(asyncio.Protocol):
    """Keeps the tail of the output and the `ocf-exit-reason:` lines, line by line."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.limit = limit
        self.tail = bytearray()
        self.trimmed = False
        self.line = bytearray()
        self.reasons: list[str] = []
        self.eof: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.tail += data
        if len(self.tail) > self.limit:
            del self.tail[: -self.limit]
            self.trimmed = True
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            # Only the start of an over-long line matters: that is where a prefix would be.
            self.line += piece[: max(0, EXIT_REASON_LIMIT * 2 - len(self.line))]
            if end < 0:
                return
            self._end_line()
            start = end + 1

    def _end_line(self) -> None:
        text = self.line.decode(errors="replace").strip()
        self.line.clear()
        if text.startswith(EXIT_REASON_PREFIX):
            reason = text[len(EXIT_REASON_PREFIX) :].strip()
            if reason and reason not in self.reasons:
                self.reasons.append(reason)

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish()
        if not self.eof.done():
            self.eof.set_result(None)

    def finish(self) -> None:
        """The output ended (or we stopped reading): an unterminated last line counts."""
        if self.line:
            self._end_line()

    def output(self) -> str:
        text = self.tail.decode(errors="replace")
        if self.trimmed and "\n" in text:
            text = text.split("\n", 1)[1]  # drop the partial first line
        return text

    def exit_reason(self) -> str:
        return "; ".join(self.reasons)[:EXIT_REASON_LIMIT]


def exec_error_text(path: str, exc: OSError) -> str:
    """Why `path` could not be executed, in words that say what to fix."""
    if exc.errno == errno.ENOENT:
        if os.path.lexists(path):
            return f"cannot run {path}: the interpreter on its #! line was not found"
        return f"cannot run {path}: no such file"
    if exc.errno == errno.EACCES:
        return f"cannot run {path}: permission denied (is it an executable file?)"
    if exc.errno == errno.ENOEXEC:
        return f"cannot run {path}: exec format error (not a program and no #! line)"
    return f"cannot run {path}: {exc.strerror or exc}"


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


async def _wait_bounded(future: asyncio.Future[None], seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(future), seconds)


async def run_invocation(
    inv: Invocation,
    timeout: float,
    grace: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    *,
    output_limit: int = OUTPUT_LIMIT,
) -> OpResult:
    """Run `inv` to its end or to `timeout` seconds; at the timeout SIGTERM the agent's process
    group, and SIGKILL it `grace` seconds later (or as soon as the agent itself has exited).

    `output_limit` bytes of output are kept (the end); raise it for output that is wanted
    whole, such as meta-data. Cancelling the calling task kills the group with SIGKILL and
    reaps the agent before the cancellation propagates.
    """
    started = clock()

    def result(rc: int, status: ExecStatus, reason: str, output: str = "") -> OpResult:
        return OpResult(rc, status, reason, output, started, clock() - started)

    if not inv.argv:
        return result(OcfRc.ERR_GENERIC, "error", "nothing to run: the command line is empty")
    if not timeout > 0:
        return result(OcfRc.ERR_GENERIC, "error", f"the timeout must be > 0 s, not {timeout!r}")
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *inv.argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                env=dict(inv.env),
                start_new_session=True,  # its own process group: killed as a whole
            )
        finally:
            os.close(write_fd)  # the agent holds the only write end now
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in argv or env
        os.close(read_fd)
        if isinstance(exc, OSError):
            return result(OcfRc.ERR_GENERIC, "error", exec_error_text(inv.argv[0], exc))
        return result(OcfRc.ERR_GENERIC, "error", f"cannot run {inv.argv[0]}: {exc}")
    except BaseException:
        os.close(read_fd)
        raise

    collector = _OutputCollector(loop, max(1, output_limit))
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    transport = None
    try:
        transport, _ = await loop.connect_read_pipe(lambda: collector, pipe)
        timed_out = ""
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = await _terminate(proc, grace)
            timed_out = f"timed out after {timeout:g}s ({timed_out})"
        await _wait_bounded(collector.eof, DRAIN_AFTER_EXIT)
    except BaseException:
        # Cancelled (or something unexpected): no running agent may outlive its run. Once the
        # agent has exited, what is left in its group was meant to stay (a started daemon).
        if proc.returncode is None:
            _kill_group(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
        raise
    finally:
        if transport is not None:
            transport.close()
        else:
            pipe.close()

    collector.finish()
    output = collector.output()
    reason = collector.exit_reason()
    if timed_out:
        return result(OcfRc.ERR_GENERIC, "timeout", _join(timed_out, reason), output)
    code = proc.returncode
    assert code is not None
    if code < 0:
        died = f"killed by signal {_signal_name(-code)}"
        return result(OcfRc.ERR_GENERIC, "error", _join(died, reason), output)
    return result(interpret(inv, code, output), "done", reason, output)


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> str:
    """SIGTERM the agent's group, SIGKILL it after `grace`; say how it ended."""
    _kill_group(proc.pid, signal.SIGTERM)
    how = "terminated with SIGTERM"
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        how = f"killed with SIGKILL after {grace:g}s grace"
    # Whatever is left of the group (children that ignore SIGTERM) goes too.
    _kill_group(proc.pid, signal.SIGKILL)
    await proc.wait()
    return how


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _join(ours: str, agents: str) -> str:
    return f"{ours}; {agents}" if agents else ours
