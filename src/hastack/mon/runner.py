"""Run mon's monitor and alert programs as mon 1.3 runs them: the thin asyncio shell.

What mon 1.3 does, and what is kept here (the server's run_monitor, call_alert, proc_cleanup):

- a program is found in a ":"-separated directory list (`mondir`, `alertdir`), relative entries
  under `basedir`: the first usable directory holding an executable file of that name wins;
- a monitor line is `name args...`; the arguments are split like Perl's
  `Text::ParseWords::quotewords('\\s+', 0, ...)` (quotes and backslashes, no shell, no `sh -c`),
  then the watch's hosts are appended, unless the line ends with `;;`;
- the monitor's stdin is /dev/null and its stderr goes into its stdout; the first output line is
  the summary, the rest the detail;
- the environment is the daemon's, then the service's `VAR=value` exports, then the MON_* ones;
- an alert gets `-s service -g group -h "hosts" -t time [-u|-a|-D|-T|-O] args...` and the monitor
  output on its stdin.

hastack's additions (see docs/compat.md): each program runs in its own process group, and is
killed (group and descendants) at a timeout; mon waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import psutil

from hastack.mon.model import MonConfig, Service

# A monitor killed at its timeout is a failure with this exit code: 1 is what mon's own monitors
# exit with on failure, so `exit=1` alert ranges and MON_RETVAL checks treat it as one.
MONITOR_TIMEOUT_EXIT = 1
# mon waits for an alert forever (in a forked child); a hung mail or pager command would then
# pile up processes. A minute is long enough for any sane notification.
DEFAULT_ALERT_TIMEOUT = 60.0
# A monitor whose exec fails exits 1 in mon (its forked child logs and exits 1).
EXEC_FAILURE_EXIT = 1
OUTPUT_LIMIT = 1 << 20  # bytes kept of a program's output; the rest is read and dropped
# After the program exits, how long to wait for the end of its output: a child it left in the
# background may hold the pipe open forever. mon reads what is there at exit and stops too.
DRAIN_AFTER_EXIT = 0.2

AlertType = Literal["failure", "up", "startup", "ack", "disable", "trap", "traptimeout", "test"]
# The option mon adds for each alert type (call_alert); failure, startup and test have none.
_ALERT_FLAG: dict[str, str] = {
    "up": "-u",
    "ack": "-a",
    "disable": "-D",
    "trap": "-T",
    "traptimeout": "-O",
}


class RunnerError(Exception):
    """A monitor or alert that could not be run at all (mon logs it and runs nothing)."""


class ProgramNotFound(RunnerError):
    def __init__(self, kind: str, name: str, searched: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        self.searched = list(searched)
        where = ", ".join(self.searched) if self.searched else "(no usable directory)"
        option = "mondir" if kind == "monitor" else "alertdir"
        super().__init__(
            f"{kind} {name!r} not found: no executable file of that name in {option} {where}"
        )


class NoHosts(RunnerError):
    """mon's "not called because of no host arguments": every host is disabled or excluded,
    and the service does not say `allow_empty_group`. mon reschedules it one interval later."""


@dataclass(frozen=True)
class MonitorResult:
    exit_code: int  # the exit status; MONITOR_TIMEOUT_EXIT at a timeout; 128+N when signal N
    summary: str  # the first output line
    detail: str  # the rest of the output, after the first newline
    duration: float  # seconds
    timed_out: bool = False
    signal: int | None = None  # the signal that ended it (SIGKILL at a timeout)
    output: str = ""  # the whole output, as mon hands it to alerts on stdin
    argv: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.exit_code != 0


@dataclass(frozen=True)
class AlertResult:
    argv: tuple[str, ...]  # as run, the program resolved in alertdir
    exit_code: int  # 128+N when killed by signal N (at the timeout: SIGKILL, 137)
    output: str  # what it wrote on stdout and stderr (mon leaves these on its own)
    duration: float
    timed_out: bool = False
    signal: int | None = None

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or self.timed_out


# -- finding programs ---------------------------------------------------------------------------


def search_dirs(path_list: str, basedir: str) -> list[str]:
    """The directories of a mondir/alertdir value as mon normalises them: split on ":" (spaces
    around it ignored), trailing "/" dropped, relative ones under basedir."""
    dirs = []
    for entry in re.split(r"\s*:\s*", path_list):
        entry = entry.rstrip("/") if entry != "/" else entry
        if entry == "":
            continue
        dirs.append(entry if os.path.isabs(entry) else os.path.join(basedir.rstrip("/"), entry))
    return dirs


def find_program(kind: str, name: str, path_list: str, basedir: str) -> str:
    """The path of `name` in the first usable directory of `path_list` where it is executable;
    like mon, that one must also be a regular file. Raises ProgramNotFound naming the list."""
    dirs = search_dirs(path_list, basedir)
    for d in dirs:
        if not (os.path.isdir(d) and os.access(d, os.X_OK)):
            continue  # mon: "scriptdir ... is not usable"
        candidate = f"{d}/{name}"
        if os.access(candidate, os.X_OK):
            if os.path.isfile(candidate):
                return candidate
            break  # mon keeps the first match even when it is not a file, then fails on it
    raise ProgramNotFound(kind, name, dirs)


# -- splitting lines like Text::ParseWords ------------------------------------------------------

_WORD = re.compile(
    r"""(?:
        (")((?>[^\\"]*(?:\\.[^\\"]*)*))"      # a double-quoted piece
      | (')((?>[^\\']*(?:\\.[^\\']*)*))'      # a single-quoted piece
      | ((?:\\.|[^\\"'])*?)                   # an unquoted piece, up to
        (\Z|\s+|(?!^)(?=["']))                # the end, a delimiter, or a quote
    )""",
    re.S | re.X,
)


def split_words(line: str) -> list[str] | None:
    """Split `line` on whitespace as Perl's quotewords('\\s+', 0, line) does: "..." and '...'
    group (their quotes removed), a backslash escapes the next character outside quotes and
    inside double quotes. Returns None for an unbalanced quote (quotewords returns nothing)."""
    words: list[str] = []
    word: str | None = None
    rest = line
    while rest:
        m = _WORD.match(rest)
        if m is None:
            return None
        quote, quoted = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        unquoted, delim = m.group(5), m.group(6)
        if quote is None and not unquoted and not delim:
            return None
        rest = rest[m.end() :]
        if quote is None:
            piece = re.sub(r"\\(.)", r"\1", unquoted or "", flags=re.S)
        elif quote == '"':
            piece = re.sub(r"\\(.)", r"\1", quoted, flags=re.S)
        else:
            piece = quoted
        word = (word or "") + piece
        if delim:
            words.append(word)
            word = None
        if not rest:
            # Perl pushes the word in progress even when undefined (after a trailing
            # delimiter); exec then passes it as an empty argument.
            words.append(word or "")
    return words


# -- building command lines and environments ----------------------------------------------------


def monitor_name(monitor_line: str) -> str:
    """The program of a `monitor` line: its first whitespace-separated word, as mon takes it."""
    parts = monitor_line.split(None, 1)
    if not parts:
        raise RunnerError("empty monitor line")
    return parts[0]


def ends_without_hosts(monitor_line: str) -> bool:
    """A monitor line ending with `;;` is run without the watch's hosts."""
    return re.search(r";;\s*$", monitor_line) is not None


def monitor_argv(program: str, monitor_line: str, hosts: Sequence[str]) -> list[str] | None:
    """`program args... hosts...`, or without the hosts when the line ends with `;;`.
    None when the arguments cannot be split (an unbalanced quote)."""
    parts = monitor_line.split(None, 1)
    args = parts[1] if len(parts) > 1 else ""
    no_hosts = ends_without_hosts(monitor_line)
    if no_hosts:
        args = re.sub(r"\s*;;\s*$", "", args)
    words = split_words(args) if args else []
    if words is None:
        return None
    return [program, *words] if no_hosts else [program, *words, *hosts]


def _resolve_dir(path: str, basedir: str) -> str:
    return path if os.path.isabs(path) else os.path.join(basedir, path)


def monitor_env(
    cfg: MonConfig, watch: str, service: Service, env_extra: Mapping[str, str]
) -> dict[str, str]:
    """The daemon's environment, the service's exports, what the caller knows of the
    service's state (MON_LAST_*, MON_FIRST_FAILURE, MON_DEPEND_STATUS, ...), then the fixed
    MON_* variables, later ones winning as in mon."""
    env = dict(os.environ)
    env.update(service.variables)
    if service.description:
        env["MON_DESCRIPTION"] = service.description
    env.update(env_extra)
    env["MON_GROUP"] = watch
    env["MON_SERVICE"] = service.name
    env.update(_dir_env(cfg))
    return env


def _dir_env(cfg: MonConfig) -> dict[str, str]:
    return {
        "MON_STATEDIR": _resolve_dir(cfg.statedir, cfg.basedir),
        "MON_LOGDIR": _resolve_dir(cfg.logdir, cfg.basedir),
        "MON_CFBASEDIR": cfg.cfbasedir,
    }


def alert_argv(
    alert: str,
    args: Sequence[str],
    *,
    watch: str,
    service: str,
    hosts: Sequence[str],
    when: float,
    alert_type: AlertType,
) -> list[str]:
    """An alert's command line as mon builds it: the alert name (found later in alertdir),
    `-s service -g group -h "host host" -t time`, the type's option, then the alert's own
    arguments. `hosts` are the watch's enabled hosts (mon drops the disabled ones)."""
    argv = [alert, "-s", service, "-g", watch, "-h", " ".join(hosts), "-t", str(int(when))]
    flag = _ALERT_FLAG.get(alert_type)
    if flag:
        argv.append(flag)
    argv.extend(args)
    return argv


def alert_env(
    cfg: MonConfig,
    watch: str,
    service: Service,
    *,
    alert_type: AlertType,
    retval: int,
    env_extra: Mapping[str, str],
) -> dict[str, str]:
    """The variables mon sets for an alert, over the service's exports: MON_GROUP, MON_SERVICE,
    MON_RETVAL, MON_ALERTTYPE and the directories; `env_extra` carries what the caller knows of
    the state (MON_LAST_*, MON_FIRST_*, MON_OPSTATUS, MON_ACK, MON_TRAP_INTENDED, ...).
    Returns only the additions: run_alert puts them over the daemon's environment."""
    env = dict(service.variables)
    if service.description:
        env["MON_DESCRIPTION"] = service.description
    env.update(env_extra)
    env["MON_GROUP"] = watch
    env["MON_SERVICE"] = service.name
    env["MON_RETVAL"] = str(retval)
    env["MON_ALERTTYPE"] = alert_type
    env.update(_dir_env(cfg))
    return env


def split_output(output: str) -> tuple[str, str]:
    """(summary, detail): mon splits the output once, at the first newline."""
    summary, _, detail = output.partition("\n")
    return summary, detail


# -- running ------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    returncode: int | None  # None: could not exec
    output: str
    duration: float
    timed_out: bool
    exec_error: str = ""


class _Collector(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.data = bytearray()
        self.eof: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        room = OUTPUT_LIMIT - len(self.data)
        if room > 0:
            self.data += data[:room]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.eof.done():
            self.eof.set_result(None)


def _exec_error_text(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"could not exec {path}: the interpreter on its #! line was not found"
    return f"could not exec {path}: {exc.strerror or exc}"


def _kill_tree(pid: int) -> None:
    """SIGKILL the program's process group and every descendant still linked to it, including
    those that left the group (setsid, setpgid). Descendants already reparented to init are out
    of reach."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for proc in descendants:
        # psutil checks the process's start time, so a reused pid is never signalled.
        with contextlib.suppress(psutil.Error):
            proc.kill()


async def _spawn(
    argv: Sequence[str], env: Mapping[str, str], stdin: int
) -> tuple[asyncio.subprocess.Process, int]:
    """Start argv with stdout+stderr into one new pipe; returns the process and the read end.
    A file that is not a program (no #! line) is run by /bin/sh, as Perl's exec (execvp) does."""
    read_fd, write_fd = os.pipe()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdin,
                stdout=write_fd,
                stderr=write_fd,
                env=dict(env),
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as exc:
            if exc.errno != errno.ENOEXEC:
                raise
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                *argv,
                stdin=stdin,
                stdout=write_fd,
                stderr=write_fd,
                env=dict(env),
                start_new_session=True,
            )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return proc, read_fd


async def _run(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin_data: bytes | None,
    timeout: float | None,
    on_pid: Callable[[int], None] | None = None,
) -> _Outcome:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    stdin = subprocess.DEVNULL if stdin_data is None else subprocess.PIPE
    try:
        proc, read_fd = await _spawn(argv, env, stdin)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in argv or env
        text = (
            _exec_error_text(argv[0], exc)
            if isinstance(exc, OSError)
            else f"could not exec {argv[0]}: {exc}"
        )
        return _Outcome(None, "", time.monotonic() - started, False, text)
    if on_pid is not None:
        on_pid(proc.pid)  # `list pids` shows the running monitors'
    collector = _Collector(loop)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    transport = None
    feeder: asyncio.Task[None] | None = None
    timed_out = False
    try:
        transport, _ = await loop.connect_read_pipe(lambda: collector, pipe)
        if stdin_data is not None and proc.stdin is not None:
            feeder = asyncio.create_task(_feed(proc.stdin, stdin_data))
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            _kill_tree(proc.pid)
            await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(collector.eof), DRAIN_AFTER_EXIT)
    except BaseException:
        # Cancelled: nothing we started may outlive the run.
        if proc.returncode is None:
            _kill_tree(proc.pid)
            await asyncio.shield(proc.wait())
        raise
    finally:
        if feeder is not None and not feeder.done():
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        if transport is not None:
            transport.close()
        else:
            pipe.close()
    output = collector.data.decode(errors="replace")
    return _Outcome(proc.returncode, output, time.monotonic() - started, timed_out)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    # An alert that exits without reading its input is fine (mon ignores SIGPIPE).
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


def _status(returncode: int) -> tuple[int, int | None]:
    """(exit code, signal) from asyncio's returncode (-N for signal N)."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


async def run_monitor(
    cfg: MonConfig,
    watch: str,
    service: Service,
    hosts: list[str],
    env_extra: dict[str, str],
    timeout: float | None,
    on_pid: Callable[[int], None] | None = None,
) -> MonitorResult:
    """Run the service's monitor for `hosts` (the watch's hosts the caller has kept: enabled,
    not excluded, not host-dependent); `timeout` None waits forever, as mon does (pass
    cfg.monitor_timeout). Raises ProgramNotFound and NoHosts, the two cases where mon runs
    nothing; every other outcome is a MonitorResult."""
    if not service.monitor:
        raise RunnerError(f"service {watch}/{service.name} has no monitor")
    if timeout is not None and not timeout > 0:
        raise RunnerError(f"monitor timeout must be > 0 s, not {timeout!r}")
    program = find_program("monitor", monitor_name(service.monitor), cfg.mondir, cfg.basedir)
    argv = monitor_argv(program, service.monitor, hosts)
    if argv is None:
        # mon's quotewords returns nothing, its exec fails and the child exits 1.
        return MonitorResult(
            EXEC_FAILURE_EXIT,
            f"could not split monitor line {service.monitor!r}: unbalanced quote",
            "",
            0.0,
        )
    if not ends_without_hosts(service.monitor) and not hosts and not service.allow_empty_group:
        raise NoHosts(
            f"monitor for {watch}/{service.name} not called: no host arguments "
            "(all hosts disabled or excluded, and no allow_empty_group)"
        )
    env = monitor_env(cfg, watch, service, env_extra)
    out = await _run(argv, env, None, timeout, on_pid)
    if out.returncode is None:
        return MonitorResult(EXEC_FAILURE_EXIT, out.exec_error, "", out.duration, argv=tuple(argv))
    if out.timed_out:
        summary = f"monitor timed out after {timeout:g} s"
        return MonitorResult(
            MONITOR_TIMEOUT_EXIT,
            summary,
            out.output,  # whatever it printed before, for the operator
            out.duration,
            timed_out=True,
            signal=signal.SIGKILL,
            output=f"{summary}\n{out.output}",
            argv=tuple(argv),
        )
    code, sig = _status(out.returncode)
    summary, detail = split_output(out.output)
    return MonitorResult(
        code, summary, detail, out.duration, signal=sig, output=out.output, argv=tuple(argv)
    )


async def run_alert(
    cfg: MonConfig,
    argv: list[str],
    env: dict[str, str],
    stdin_text: str,
    timeout: float = DEFAULT_ALERT_TIMEOUT,
) -> AlertResult:
    """Run an alert: argv[0] is its name, found in alertdir, or an absolute path already found
    there (ProgramNotFound otherwise: mon's "no alert found"); `env` goes over the daemon's
    environment; `stdin_text` (the monitor's output) is written to its stdin. Killed with its
    group and descendants at `timeout` (mon has none)."""
    if not argv:
        raise RunnerError("empty alert command line")
    if not timeout > 0:
        raise RunnerError(f"alert timeout must be > 0 s, not {timeout!r}")
    if os.path.isabs(argv[0]):
        program = argv[0]  # already resolved (alerting.alert_argv_env passes the path)
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise ProgramNotFound("alert", program, search_dirs(cfg.alertdir, cfg.basedir))
    else:
        program = find_program("alert", argv[0], cfg.alertdir, cfg.basedir)
    full_argv = (program, *argv[1:])
    out = await _run(full_argv, {**os.environ, **env}, stdin_text.encode(), timeout)
    if out.returncode is None:
        return AlertResult(full_argv, EXEC_FAILURE_EXIT, out.exec_error, out.duration)
    code, sig = _status(out.returncode)
    return AlertResult(full_argv, code, out.output, out.duration, out.timed_out, sig)
