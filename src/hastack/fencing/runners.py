"""Run one action of one fence device as a subprocess, and say what came of it.

This is the I/O side of fencing: the fencer (a sans-IO core) asks for a :class:`DeviceCall`
and gets a :class:`DeviceResult` back. Three kinds of device run a process here:

* **fence-agents** (``fence_*``): the agent runs with no arguments and reads ``name=value``
  lines on stdin: the device's parameters, then ``action=``, the plug (as ``plug=`` or
  ``port=``, whichever the agent's metadata names; none for an agent without one) and
  ``nodename=``. Exit 0 is success; ``status`` exits 0 for on and 2 for off; ``list``
  prints ``plug,alias`` lines; ``metadata`` prints XML.
* **cluster-glue plugins** (``null``, ``meatware``, ``external/ssh``, ...) through the
  ``stonith`` command: ``stonith -t TYPE -E -T off|on|reset -- NODE``, ``-S`` (device check),
  ``-l`` (hosts), ``-m`` (metadata). Parameters go in the environment (``-E``), not on the
  command line, where any local user could read a password in ``ps``; stonith's log lines
  are sent to stderr (``HA_logfile=/dev/stderr``) so that a failure has a reason.
* **hastack/external**: ``SCRIPT ACTION [NODE]`` with every other parameter exported as it is
  named (cluster-glue's external-plugin convention), plus ``HASTACK_FENCE_ACTION``,
  ``HASTACK_FENCE_TARGET`` and ``HASTACK_FENCE_PORT``; exit codes as fence-agents.

``hastack/ssh`` and ``hastack/ipmi`` are run by :mod:`hastack.fencing.ssh_ipmi`;
``hastack/manual`` and ``hastack/watchdog`` run no process (the fencer core handles them).

Every process runs in its own session and process group. At the timeout the group gets
SIGTERM, then SIGKILL shortly after; once the agent exits, whatever it left in its group is
killed too (nothing a fence action starts may outlive it). stdout and stderr are read as they
come; the last few KiB of both are kept for the result, stdout whole (up to a limit) for
``list`` and ``metadata``. An agent's failure never raises: not found, not executable, timed
out, killed by a signal all become a :class:`DeviceResult` with ``ok=False`` and a reason.
Bad input (a call that could not be what the configuration meant) raises ValueError before
anything runs. Passwords in the parameters are masked in the reason and output.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from hastack.agents.runner import exec_error_text
from hastack.fencing.metadata import (
    FENCE_ACTIONS,
    PARAM_NAME,
    DeviceMetadata,
    MetadataError,
    builtin_metadata,
    glue_metadata_from_names,
    parse_agent_metadata,
    parse_glue_confignames,
)

DeviceKind = Literal["fence-agent", "glue", "external", "manual", "watchdog", "ssh", "ipmi"]
OWN_KINDS: tuple[str, ...] = ("external", "manual", "watchdog", "ssh", "ipmi")
POWER_ACTIONS = frozenset({"off", "on", "reboot"})
DEVICE_WIDE_ACTIONS = frozenset({"monitor", "list", "metadata"})  # no target

OUTPUT_TAIL = 4096  # bytes of stdout+stderr kept: the end, where the reason usually is
STDOUT_LIMIT = 1024 * 1024  # stdout kept whole for list and metadata, up to this
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL at a timeout
DRAIN_AFTER_EXIT = 1.0  # seconds to wait for the end of the output once the group is gone
METADATA_TIMEOUT = 20.0  # seconds for an agent's metadata (agent_metadata, plug discovery)
REASON_LIMIT = 300  # characters of an output line quoted in a reason

_FENCE_AGENT = re.compile(r"fence_[A-Za-z0-9_.+-]+")
_GLUE_TYPE = re.compile(r"(?:external/)?[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_SECRET_NAME = re.compile(r"passw|secret|token|community", re.IGNORECASE)
_BAD_CHARS = re.compile(r"[\n\r\x00]")
# Reserved on a fence agent's stdin: the runner writes the action itself.
_RESERVED_PARAMS = frozenset({"action", "option"})

# cluster-glue's return codes (stonith.h), which the stonith command exits with.
GLUE_CODES: dict[int, str] = {
    1: "S_BADCONFIG: bad configuration",
    2: "S_ACCESS: cannot reach the device",
    3: "S_INVAL: invalid argument (or the device is not configured)",
    4: "S_BADHOST: unknown host",
    5: "S_RESETFAIL: the action failed",
    6: "S_TIMEOUT: the device timed out",
    7: "S_ISOFF: the node is off",
    8: "S_OOPS: internal error, or no such plugin type",
    255: "the device could not list its hosts",
}
_GLUE_ISOFF = 7

# Timestamps that log lines start with, left out of a reason: stonith's cl_log lines
# ("Dec 06 05:19:48 host stonith: [1555]: ") and fencing.py's ("2026-12-06 05:17:12,946 ").
_LOG_PREFIX = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [^:\s]+: \[\d+\]: "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ )"
)
# Lines that say nothing about the failure (fencing.py ends every usage error with this).
_BOILERPLATE = re.compile(r"Please use '-h' for usage")


# heartbeat R1's devices keep their parameters as the stonith command takes them
HACF_CONFIG_FILE = "hastack-glue-config-file"  # stonith TYPE FILE: stonith -F FILE
HACF_PARAMETERS = "hastack-glue-parameters"  # stonith_host FROM TYPE PARAMS: stonith -p PARAMS


@dataclass(frozen=True)
class FencePaths:
    """Where the programs are: fence agents are looked up in `fence_dirs`, in order."""

    fence_dirs: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin")
    stonith_command: str = "/usr/sbin/stonith"


DEFAULT_FENCE_PATHS = FencePaths()


@dataclass(frozen=True)
class DeviceCall:
    """One action of one device, as the fencer asks for it."""

    device: str  # the device's id, for messages
    agent: str  # the CIB primitive's type: fence_dummy, external/ssh, null, hastack/external
    action: str  # off, on, reboot, status, monitor, list, metadata
    target: str | None  # the node as the cluster names it (None for monitor, list, metadata)
    port: str | None  # the plug/port name for the target (after pcmk_host_map); None: target
    params: Mapping[str, str]  # the device's own instance attributes (no pcmk_*)
    timeout: float  # seconds; the whole process group is killed at the timeout
    # pcmk_host_argument: the agent parameter that names the target ("": plug or port, as
    # the agent's metadata says; None: the agent is given no port at all)
    host_argument: str | None = ""


@dataclass(frozen=True)
class DeviceResult:
    """What came of a DeviceCall."""

    ok: bool  # the action did what was asked (status: the answer is known)
    power: Literal["on", "off"] | None  # status only (None when unknown)
    targets: tuple[str, ...] | None  # list only: the names the device can fence
    rc: int | None  # exit code (None: killed, timed out or could not run)
    reason: str  # one line: why it failed ("" when it did not)
    output: str  # the tail of stdout+stderr
    seconds: float


class FenceRunnerError(RuntimeError):
    """hastack itself cannot run this kind of device (a missing module), as opposed to the
    device failing, which is a DeviceResult."""


# ---- names and validation --------------------------------------------------------------------


def _allowed_agents() -> str:
    return (
        "fence_NAME (fence-agents), "
        + ", ".join(f"hastack/{k}" for k in OWN_KINDS)
        + ", or a cluster-glue plugin type such as null, meatware or external/ssh"
    )


def device_kind(agent: str) -> DeviceKind:
    """Which runner a device's agent (the primitive's type) belongs to. Raises ValueError for
    a name that none can run: empty, with path separators (other than ``hastack/KIND`` and
    glue's ``external/NAME``), or an unknown ``hastack/`` kind."""
    if not isinstance(agent, str) or not agent:
        raise ValueError(f"agent: empty; allowed: {_allowed_agents()}")
    if agent.startswith("hastack/"):
        kind = agent.removeprefix("hastack/")
        if kind not in OWN_KINDS:
            raise ValueError(
                f"agent: unknown hastack device {agent!r}; allowed: "
                + ", ".join(f"hastack/{k}" for k in OWN_KINDS)
            )
        return kind  # type: ignore[return-value]  # one of OWN_KINDS
    if agent.startswith("fence_"):
        if not _FENCE_AGENT.fullmatch(agent):
            raise ValueError(
                f"agent: {agent!r} is not a fence agent's file name (allowed: fence_ followed "
                "by letters, digits, '_', '.', '+', '-'; no path)"
            )
        return "fence-agent"
    if not _GLUE_TYPE.fullmatch(agent):
        raise ValueError(
            f"agent: {agent!r} is not a device type (no path separators or spaces, except in "
            f"external/NAME); allowed: {_allowed_agents()}"
        )
    return "glue"


def _check_name(field: str, value: object, *, glue: bool) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: must be a non-empty string, not {value!r}")
    if _BAD_CHARS.search(value):
        raise ValueError(f"{field}: {value!r} contains a newline or NUL, which is not allowed")
    if value.startswith("-"):
        raise ValueError(f"{field}: {value!r} starts with '-', which would read as an option")
    if glue and "=" in value:
        raise ValueError(
            f"{field}: {value!r} contains '=', which the stonith command reads as a parameter"
        )


def check_call(call: DeviceCall) -> DeviceKind:
    """Check a call before anything runs; return the device's kind. Raises ValueError naming
    the field and what is allowed."""
    kind = device_kind(call.agent)
    if call.action not in FENCE_ACTIONS:
        raise ValueError(
            f"action: {call.action!r} is not a fence action; allowed: {', '.join(FENCE_ACTIONS)}"
        )
    if (
        isinstance(call.timeout, bool)
        or not isinstance(call.timeout, int | float)
        or not math.isfinite(call.timeout)
        or call.timeout <= 0
    ):
        raise ValueError(f"timeout: must be a finite number of seconds > 0, not {call.timeout!r}")
    if call.action in POWER_ACTIONS and call.target is None:
        raise ValueError(f"target: {call.action} needs the node to act on; it is None")
    if call.action not in DEVICE_WIDE_ACTIONS:
        if call.target is not None:
            _check_name("target", call.target, glue=kind == "glue")
        if call.port is not None:
            _check_name("port", call.port, glue=kind == "glue")
    if not isinstance(call.params, Mapping):
        raise ValueError(f"params: must be a mapping of names to strings, not {call.params!r}")
    for name, value in call.params.items():
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
            raise ValueError(
                f"params: name {name!r} is not allowed (letters, digits, '_', '.', '-', "
                "starting with a letter or '_')"
            )
        if not isinstance(value, str):
            raise ValueError(f"params: {name} must be a string, not {type(value).__name__}")
        if _BAD_CHARS.search(value):
            raise ValueError(
                f"params: {name} contains a newline or NUL, which is not allowed (it would "
                "add lines to the agent's input)"
            )
        if kind == "fence-agent" and name in _RESERVED_PARAMS:
            raise ValueError(
                f"params: {name!r} is set by the fencer for each action; remove it from the "
                "device's parameters"
            )
    if kind == "external":
        script = call.params.get("script", "")
        if not script:
            raise ValueError("params: hastack/external needs 'script', the executable to run")
        if not os.path.isabs(script):
            raise ValueError(f"params: script {script!r} must be an absolute path")
    return kind


# ---- building the invocation (pure) ----------------------------------------------------------


def _node_port(call: DeviceCall) -> str | None:
    """The name the device knows the target by; None for device-wide actions."""
    if call.action in DEVICE_WIDE_ACTIONS or call.target is None:
        return None
    return call.port if call.port is not None else call.target


def fence_agent_stdin(call: DeviceCall, port_parameter: str | None) -> bytes:
    """The ``name=value`` lines for a fence agent. `port_parameter` is ``plug``, ``port``
    or None (the agent has none: no plug line). The device's parameters come first, so that
    the lines the runner writes win (agents keep the last value of a repeated name); a plug
    the device configures itself is left alone, as Pacemaker does."""
    lines = [f"{name}={value}" for name, value in call.params.items()]
    lines.append(f"action={call.action}")
    port = _node_port(call)
    if port is not None:
        configured = {"plug", "port"} & set(call.params)
        if port_parameter is not None and not configured:
            lines.append(f"{port_parameter}={port}")
        if call.target is not None:
            lines.append(f"nodename={call.target}")
    return ("\n".join(lines) + "\n").encode()


def glue_argv(call: DeviceCall, paths: FencePaths = DEFAULT_FENCE_PATHS) -> list[str]:
    """The stonith command line (the parameters go in the environment: -E)."""
    argv = [paths.stonith_command, "-t", call.agent]
    if call.action == "metadata":
        return [*argv, "-m"]
    # heartbeat R1's devices (ha.cf): `stonith TYPE FILE` keeps the parameters in FILE (-F),
    # `stonith_host FROM TYPE PARAMS...` gives the plugin's legacy one-line form (-p)
    if HACF_CONFIG_FILE in call.params:
        argv += ["-F", call.params[HACF_CONFIG_FILE]]
    elif HACF_PARAMETERS in call.params:
        argv += ["-p", call.params[HACF_PARAMETERS]]
    else:
        argv.append("-E")
    port = _node_port(call)
    if call.action in POWER_ACTIONS:
        assert port is not None  # check_call: power actions have a target
        flag = "reset" if call.action == "reboot" else call.action
        return [*argv, "-T", flag, "--", port]
    if call.action == "status" and port is not None:
        return [*argv, "-S", "-l"]  # the device works, and lists the node
    if call.action == "list":
        return [*argv, "-l"]
    return [*argv, "-S"]  # monitor, and status without a node


def glue_env(call: DeviceCall, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for stonith -E: the parameters as they are named, and stonith's log
    lines on stderr instead of syslog only."""
    env = dict(os.environ if base is None else base)
    env.update(
        (k, v) for k, v in call.params.items() if k not in (HACF_CONFIG_FILE, HACF_PARAMETERS)
    )
    env["HA_logfile"] = "/dev/stderr"
    env["HA_logfacility"] = "none"
    return env


def external_invocation(
    call: DeviceCall, base: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a hastack/external device's script."""
    params = dict(call.params)
    script = params.pop("script")
    port = _node_port(call)
    argv = [script, call.action] + ([port] if port is not None else [])
    env = dict(os.environ if base is None else base)
    env.update(params)
    env["HASTACK_FENCE_ACTION"] = call.action
    env["HASTACK_FENCE_TARGET"] = call.target if port is not None and call.target else ""
    env["HASTACK_FENCE_PORT"] = port or ""
    return argv, env


# ---- interpreting the outcome (pure) ---------------------------------------------------------


def last_line(output: str) -> str:
    """The last non-empty line of the output without a log timestamp, shortened: the line
    that usually says why."""
    for line in reversed(output.splitlines()):
        line = _LOG_PREFIX.sub("", line.strip()).strip()
        if line and not _BOILERPLATE.search(line):
            return line if len(line) <= REASON_LIMIT else line[: REASON_LIMIT - 3] + "..."
    return ""


def _exit_reason(rc: int, output: str, glue: bool = False) -> str:
    what = f"exit {rc}"
    if glue and rc in GLUE_CODES:
        what += f" ({GLUE_CODES[rc]})"
    line = last_line(output)
    return f"{what}: {line}" if line else f"{what}, no output"


def parse_list(stdout: str) -> tuple[tuple[str, ...] | None, str]:
    """The names a ``list`` printed (``plug,alias`` or one name a line: the first field), or
    None and why when the device says it cannot list (fencing.py prints ``N/A`` for a device
    without plugs, and a NOTICE when listing is not implemented)."""
    names: list[str] = []
    for raw in stdout.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == "N/A" or line.startswith("NOTICE:"):
            return None, f"the device cannot list its targets: {line[:REASON_LIMIT]}"
        name = line.split(",", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    return tuple(names), ""


Interpretation = tuple[bool, Literal["on", "off"] | None, tuple[str, ...] | None, str]


def interpret(
    kind: DeviceKind, call: DeviceCall, rc: int, stdout: str, output: str
) -> Interpretation:
    """(ok, power, targets, reason) for an agent that exited with `rc`.

    fence-agents and hastack/external: 0 is success; status 0 is on and 2 is off.
    Glue plugins through stonith: 0 is success (and S_ISOFF counts for off/reboot: the node is
    off); a glue plugin cannot tell a node's power, so status answers whether the device works
    and lists the node, with power None.
    """
    glue = kind == "glue"
    action = call.action
    if action in POWER_ACTIONS:
        if rc == 0 or (glue and rc == _GLUE_ISOFF and action in ("off", "reboot")):
            return True, None, None, ""
        return False, None, None, _exit_reason(rc, output, glue)
    if action == "status" and not glue:
        if rc == 0:
            return True, "on", None, ""
        if rc == 2:
            return True, "off", None, ""
        return False, None, None, _exit_reason(rc, output)
    if action == "status" and _node_port(call) is not None:  # glue: -S -l
        if rc != 0:
            return False, None, None, _exit_reason(rc, output, glue)
        port = _node_port(call)
        assert port is not None
        names, why = parse_list(stdout)
        if names is None:
            return False, None, None, why
        if port.lower() not in {n.lower() for n in names}:
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            return False, None, None, f"the device does not list {port} (it lists: {shown})"
        return True, None, None, ""
    if rc != 0:
        return False, None, None, _exit_reason(rc, output, glue)
    if action == "list":
        names, why = parse_list(stdout)
        return (names is not None), None, names, why
    if action == "metadata" and kind != "external":
        try:
            parse_agent_metadata(stdout, call.agent, "glue" if glue else "fence-agent")
        except MetadataError as exc:
            return False, None, None, str(exc)
    return True, None, None, ""  # monitor, status without a node, metadata


def secret_values(params: Mapping[str, str]) -> list[str]:
    """The values of parameters named like passwords, longest first."""
    values = {v for k, v in params.items() if v and _SECRET_NAME.search(k)}
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, secrets: list[str]) -> str:
    """`text` with every secret replaced by ``***`` (a very short secret only where it stands
    alone, so that masking it does not garble every word it is part of)."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text


# ---- the subprocess --------------------------------------------------------------------------


@dataclass
class _Sink:
    """The tail of stdout+stderr as they arrive, and stdout whole up to a limit."""

    tail: bytearray
    stdout: bytearray
    trimmed: bool = False
    stdout_truncated: bool = False

    def add(self, data: bytes, is_stdout: bool) -> None:
        self.tail += data
        if len(self.tail) > OUTPUT_TAIL:
            del self.tail[:-OUTPUT_TAIL]
            self.trimmed = True
        if is_stdout:
            room = STDOUT_LIMIT - len(self.stdout)
            if len(data) > room:
                self.stdout_truncated = True
            self.stdout += data[: max(0, room)]

    def output(self) -> str:
        text = self.tail.decode(errors="replace")
        if self.trimmed and "\n" in text:
            text = text.split("\n", 1)[1]  # drop the partial first line
        return text


@dataclass(frozen=True)
class _Outcome:
    rc: int | None  # None: did not exit by itself
    problem: str  # why there is no exit code: could not run, timed out, killed by a signal
    stdout: str
    stdout_truncated: bool
    output: str
    timed_out: bool = False


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _memory_file(data: bytes) -> int:
    """A descriptor of an anonymous in-memory file holding `data`, read from its start."""
    fd = os.memfd_create("hastack-fence-input", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Reader(asyncio.Protocol):
    """Feeds one pipe (stdout or stderr) into the sink; `eof` is done when it closes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: _Sink, is_stdout: bool) -> None:
        self.sink = sink
        self.is_stdout = is_stdout
        self.eof: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.sink.add(data, self.is_stdout)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.eof.done():
            self.eof.set_result(None)


async def run_process(
    argv: list[str],
    *,
    stdin: bytes | None,
    env: Mapping[str, str] | None,
    timeout: float,
    grace: float = KILL_GRACE,
) -> _Outcome:
    """Run `argv` in its own session with `stdin` (None: /dev/null); at `timeout` SIGTERM its
    process group and SIGKILL it `grace` seconds later. After the leader exits, whatever is
    left in its group is killed. Cancelling the caller kills the group and reaps the leader
    before the cancellation goes on.

    The pipes are our own, not asyncio's: asyncio's wait() also waits for its pipes to
    close, which a child left behind holding stdout would put off forever. stdin is a file in
    memory (it holds passwords: never on a disk), so an agent that never reads it cannot
    block us, whatever its size.
    """
    loop = asyncio.get_running_loop()
    sink = _Sink(bytearray(), bytearray())
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(os.close, out_w)  # the agent holds the only write ends after spawn
            stack.callback(os.close, err_w)
            stdin_arg: int = asyncio.subprocess.DEVNULL
            if stdin is not None:
                stdin_arg = _memory_file(stdin)
                stack.callback(os.close, stdin_arg)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdin_arg,
                stdout=out_w,
                stderr=err_w,
                env=None if env is None else dict(env),
                start_new_session=True,  # its own process group: killed as a whole
            )
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL validation let through
        os.close(out_r)
        os.close(err_r)
        why = exec_error_text(argv[0], exc) if isinstance(exc, OSError) else str(exc)
        if not why.startswith("cannot run"):
            why = f"cannot run {argv[0]}: {why}"
        return _Outcome(None, why, "", False, "")
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise

    readers: list[_Reader] = []
    transports: list[asyncio.BaseTransport] = []
    unowned = [out_r, err_r]  # descriptors not yet handed to a pipe object
    problem = ""
    try:
        for fd, is_stdout in ((out_r, True), (err_r, False)):
            reader = _Reader(loop, sink, is_stdout)
            pipe = os.fdopen(fd, "rb", buffering=0)
            unowned.remove(fd)
            try:
                transport, _ = await loop.connect_read_pipe(lambda r=reader: r, pipe)
            except BaseException:
                pipe.close()
                raise
            readers.append(reader)
            transports.append(transport)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            problem = f"timed out after {timeout:g} s"
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                problem += f" (killed with SIGKILL {grace:g} s after SIGTERM)"
        # Whatever the agent left in its group (children that ignore SIGTERM, a helper it
        # started) goes now: a fence action leaves nothing running.
        _kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.shield(r.eof) for r in readers)), DRAIN_AFTER_EXIT
            )
    except BaseException:
        _kill_group(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await asyncio.shield(proc.wait())
        raise
    finally:
        for transport in transports:
            transport.close()
        for fd in unowned:
            os.close(fd)
    code = proc.returncode
    stdout = sink.stdout.decode(errors="replace")
    if problem:
        return _Outcome(None, problem, stdout, sink.stdout_truncated, sink.output(), True)
    assert code is not None
    if code < 0:
        died = f"killed by {_signal_name(-code)}"
        return _Outcome(None, died, stdout, sink.stdout_truncated, sink.output())
    return _Outcome(code, "", stdout, sink.stdout_truncated, sink.output())


# ---- locating programs -----------------------------------------------------------------------


def locate_fence_agent(agent: str, paths: FencePaths) -> tuple[str | None, str]:
    """The agent's path, or None and why not (named like: fence_foo not found in ...)."""
    for directory in paths.fence_dirs:
        path = os.path.join(directory, agent)
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return path, ""
            return None, f"{path} is not executable"
    where = ", ".join(paths.fence_dirs) or "(no directories configured)"
    return None, f"{agent} not found in {where} (is fence-agents installed?)"


def _stonith_problem(paths: FencePaths) -> str:
    command = paths.stonith_command
    if not os.path.isfile(command):
        return f"{command} not found: cluster-glue's stonith command runs glue plugins"
    if not os.access(command, os.X_OK):
        return f"{command} is not executable"
    return ""


# ---- metadata --------------------------------------------------------------------------------

_metadata_cache: dict[tuple[str, int, int], DeviceMetadata] = {}


def _file_key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return path, st.st_mtime_ns, st.st_size


async def _fence_agent_metadata(agent: str, path: str, timeout: float) -> DeviceMetadata:
    key = _file_key(path)
    if key is not None and key in _metadata_cache:
        return _metadata_cache[key]
    outcome = await run_process([path], stdin=b"action=metadata\n", env=None, timeout=timeout)
    if outcome.rc != 0:
        why = outcome.problem or _exit_reason(outcome.rc or 0, outcome.output)
        raise MetadataError(f"{agent}: metadata failed: {why}")
    if outcome.stdout_truncated:
        raise MetadataError(f"{agent}: metadata larger than {STDOUT_LIMIT} bytes")
    meta = parse_agent_metadata(outcome.stdout, agent, "fence-agent")
    if key is not None:
        _metadata_cache[key] = meta
    return meta


async def _glue_metadata(agent: str, paths: FencePaths, timeout: float) -> DeviceMetadata:
    problem = _stonith_problem(paths)
    if problem:
        raise MetadataError(f"{agent}: {problem}")
    base = [paths.stonith_command, "-t", agent]
    outcome = await run_process([*base, "-m"], stdin=None, env=None, timeout=timeout)
    first_problem = ""
    if outcome.rc == 0:
        try:
            return parse_agent_metadata(outcome.stdout, agent, "glue")
        except MetadataError as exc:
            first_problem = str(exc)
    else:
        first_problem = outcome.problem or _exit_reason(outcome.rc or 0, outcome.output, True)
    names = await run_process([*base, "-n"], stdin=None, env=None, timeout=timeout)
    if names.rc == 0:
        return glue_metadata_from_names(agent, parse_glue_confignames(names.stdout, agent))
    why = names.problem or _exit_reason(names.rc or 0, names.output, True)
    raise MetadataError(
        f"{agent}: stonith -m failed ({first_problem}) and stonith -n failed ({why}); "
        "is it a plugin type that 'stonith -L' lists?"
    )


def _own_module(kind: str) -> object:
    try:
        return importlib.import_module("hastack.fencing.ssh_ipmi")
    except ModuleNotFoundError as exc:
        if exc.name not in ("hastack.fencing.ssh_ipmi", "hastack.fencing"):
            raise
        raise FenceRunnerError(
            f"hastack/{kind} devices are run by hastack.fencing.ssh_ipmi, which is not "
            "installed (src/hastack/fencing/ssh_ipmi.py is missing)"
        ) from None


async def agent_metadata(agent: str, *, paths: FencePaths = DEFAULT_FENCE_PATHS) -> DeviceMetadata:
    """What `agent` says about itself: its parameters and actions.

    fence-agents: ``action=metadata`` on stdin (cached per file and modification time);
    glue plugins: ``stonith -t TYPE -m``, else ``-n`` (names only); hastack's external, manual
    and watchdog: built in; ssh and ipmi: ``hastack.fencing.ssh_ipmi.metadata(kind)``.
    Raises ValueError for a name no runner takes, MetadataError when the agent cannot be
    found, fails, or prints nothing usable.
    """
    kind = device_kind(agent)
    if kind == "fence-agent":
        path, why = locate_fence_agent(agent, paths)
        if path is None:
            raise MetadataError(why)
        return await _fence_agent_metadata(agent, path, METADATA_TIMEOUT)
    if kind == "glue":
        return await _glue_metadata(agent, paths, METADATA_TIMEOUT)
    if kind in ("ssh", "ipmi"):
        module = _own_module(kind)
        getter = getattr(module, "metadata", None)
        if getter is None:
            raise MetadataError(f"hastack.fencing.ssh_ipmi has no metadata() for hastack/{kind}")
        meta = getter(kind)
        if not isinstance(meta, DeviceMetadata):
            raise MetadataError(f"hastack.fencing.ssh_ipmi.metadata({kind!r}) is not metadata")
        return meta
    return builtin_metadata(kind)


async def _port_parameter(agent: str, path: str, budget: float) -> str:
    """plug, port or "" for a fence agent, from its metadata. When the metadata cannot be
    read, ``port``: every fence agent takes it, and one without a port ignores it."""
    try:
        meta = await _fence_agent_metadata(agent, path, max(0.5, min(METADATA_TIMEOUT, budget)))
    except MetadataError:
        return "port"
    return meta.port_parameter() or ""


# ---- the entry point -------------------------------------------------------------------------


async def run_device(call: DeviceCall, *, paths: FencePaths = DEFAULT_FENCE_PATHS) -> DeviceResult:
    """Run one action of one device; never raises for the device's failures.

    Raises ValueError for bad input (see check_call), and for hastack/manual and
    hastack/watchdog (no process: the fencer core handles them). hastack/ssh and
    hastack/ipmi go to ``hastack.fencing.ssh_ipmi.run_ssh``/``run_ipmi`` (FenceRunnerError
    when that module is missing).
    """
    kind = check_call(call)
    if kind in ("manual", "watchdog"):
        raise ValueError(
            f"agent: hastack/{kind} runs no process; the fencer handles it without run_device"
        )
    if kind in ("ssh", "ipmi"):
        module = _own_module(kind)
        runner: Callable[[DeviceCall], Awaitable[DeviceResult]] | None = getattr(
            module, f"run_{kind}", None
        )
        if runner is None:
            raise FenceRunnerError(f"hastack.fencing.ssh_ipmi has no run_{kind}()")
        return await runner(call)

    started = time.monotonic()
    secrets = secret_values(call.params)

    def result(
        ok: bool,
        reason: str,
        output: str = "",
        *,
        rc: int | None = None,
        power: Literal["on", "off"] | None = None,
        targets: tuple[str, ...] | None = None,
    ) -> DeviceResult:
        return DeviceResult(
            ok=ok,
            power=power,
            targets=targets,
            rc=rc,
            reason=mask_secrets(reason, secrets),
            output=mask_secrets(output, secrets),
            seconds=time.monotonic() - started,
        )

    argv: list[str]
    env: dict[str, str] | None = None
    stdin: bytes | None = None
    if kind == "fence-agent":
        path, why = locate_fence_agent(call.agent, paths)
        if path is None:
            return result(False, why)
        port_parameter: str | None = None
        if _node_port(call) is not None and call.host_argument is not None:
            port_parameter = call.host_argument or (
                await _port_parameter(call.agent, path, call.timeout / 3) or None
            )
        argv, stdin = [path], fence_agent_stdin(call, port_parameter)
    elif kind == "glue":
        problem = _stonith_problem(paths)
        if problem:
            return result(False, problem)
        argv, env = glue_argv(call, paths), glue_env(call)
    else:  # external
        argv, env = external_invocation(call)
    remaining = call.timeout - (time.monotonic() - started)
    if remaining <= 0:
        return result(False, f"timed out after {call.timeout:g} s (reading the metadata)")
    outcome = await run_process(argv, stdin=stdin, env=env, timeout=remaining)
    if outcome.rc is None:
        problem = outcome.problem
        if outcome.timed_out:  # the call's timeout, of which the metadata may have used some
            problem = problem.replace(f"after {remaining:g} s", f"after {call.timeout:g} s", 1)
        line = last_line(outcome.output)
        return result(False, f"{problem}: {line}" if line else problem, outcome.output)
    ok, power, targets, reason = interpret(kind, call, outcome.rc, outcome.stdout, outcome.output)
    if call.action in ("list", "metadata") and outcome.stdout_truncated and ok:
        ok, targets, reason = False, None, f"more than {STDOUT_LIMIT} bytes of output"
    return result(ok, reason, outcome.output, rc=outcome.rc, power=power, targets=targets)
