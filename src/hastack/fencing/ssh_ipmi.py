"""hastack's own ``ssh`` and ``ipmi`` fence devices (agents ``hastack/ssh`` and ``hastack/ipmi``).

Both run one :class:`~hastack.fencing.runners.DeviceCall` to a
:class:`~hastack.fencing.runners.DeviceResult`. The split follows the design's sans-IO rule as far
as a device allows: reading and checking the parameters (:func:`ssh_config`, :func:`ipmi_config`),
building the command lines (:func:`ssh_argv`, :func:`ipmitool_argv`) and reading what the tools
print (:func:`classify_ssh`, :func:`parse_power_status`, :func:`classify_ipmitool`) are plain
functions; :func:`run_ssh` and :func:`run_ipmi` only run processes and keep time.

**What "fenced" means here.** A fence device may say "off" only when it *knows* the node is off:
a wrong "off" lets a resource run twice. So:

* ``ipmi`` asks the node's BMC, which sees the power rail: ``off`` succeeds once ``chassis power
  status`` says off, polled after the command, the way fence_ipmilan confirms it.
* ``ssh`` can only see whether the host still answers. ``off``/``reboot`` need the host to answer
  ssh first (we log in, so the command will reach it), then run the power-off command, then poll
  until the host stops answering. A host that does not answer in the first place is a failure,
  never a success: ssh cannot tell a dead host from a cut link, and a host behind a cut link may
  still be running the resources. Only *silence* counts as gone (connect timed out, no route to
  host): a refused connection means the host's kernel is up. Even so, ssh fencing cannot rule out
  that the link failed at the very moment the host was told to power off; prefer ipmi or a power
  switch, and use ssh where nothing better exists (or for testing).

Bad parameters raise ValueError naming the parameter and what is allowed; everything that happens
when the device runs (no answer, refused login, a BMC that says no) is a ``DeviceResult`` with
``ok=False`` and a reason an operator can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from hastack.agents.metadata import Parameter, parse_duration
from hastack.fencing.metadata import DeviceMetadata, parse_agent_metadata
from hastack.fencing.runners import DeviceCall, DeviceResult

ACTIONS = ("off", "on", "reboot", "status", "monitor", "list", "metadata")

# How long a probe's TCP connect may take before the host counts as silent (capped by the call's
# time left), and how often a host that still answers is asked again.
PROBE_CONNECT_MAX = 5
POLL_INTERVAL = 0.5
# How long the power-off command's own ssh session is waited for before the confirmation polls
# start: a host that powers off mid-session never closes it, so we do not wait for it.
COMMAND_WAIT = 4.0
# ServerAlive settings for every session: a host that vanishes mid-session is noticed in ~3 s.
_ALIVE_INTERVAL = 1
_ALIVE_COUNT = 3

NOT_CONFIRMABLE = (
    "ssh cannot confirm a host that does not answer is off; use ipmi or a power switch"
)


def _param(
    name: str,
    shortdesc: str,
    longdesc: str,
    *,
    required: bool = False,
    default: str | None = None,
    type_: str = "string",
    options: tuple[str, ...] = (),
) -> Parameter:
    return Parameter(
        name=name,
        required=required,
        unique=False,
        type=type_,
        default=default,
        shortdesc=shortdesc,
        longdesc=longdesc,
        options=options,
    )


_HOSTLIST = _param(
    "hostlist",
    "Hosts this device can fence (for the list action)",
    "Node names separated by spaces or commas. Neither ssh nor ipmi can discover the hosts it "
    "reaches, so `list` answers this list, and fails without it.",
)

SSH_PARAMETERS: tuple[Parameter, ...] = (
    _param(
        "hostname",
        "Host to log in to",
        "Name or address of the host; default: the target (after pcmk_host_map).",
    ),
    _param(
        "user",
        "Login user",
        "The user ssh logs in as; it must be allowed to power the "
        "host off (root, or a command_off with sudo).",
        default="root",
    ),
    _param(
        "identity_file",
        "Private key file",
        "Passed as ssh -i, with IdentitiesOnly=yes so "
        "no other key is tried; default: ssh's own choice.",
    ),
    _param("ssh_port", "ssh port", "TCP port of the host's sshd.", default="22", type_="integer"),
    _param(
        "ssh_options",
        "Extra ssh -o options",
        "Key=Value items separated by spaces (an item may be preceded by -o), e.g. "
        "'UserKnownHostsFile=/etc/hastack/known_hosts'. BatchMode, ConnectTimeout, "
        "StrictHostKeyChecking and ServerAlive* are set by the device and refused here.",
    ),
    _param(
        "strict_host_key_checking",
        "ssh StrictHostKeyChecking",
        "yes (default): the host's key must already be in known_hosts. Accepting an unknown "
        "key (accept-new, no) lets whoever answers at that address first - a replaced machine, "
        "an address taken over, an attacker - be the one we 'power off', and the cluster then "
        "believes the real node is dead while it still runs its resources.",
        default="yes",
        type_="select",
        options=("yes", "accept-new", "no"),
    ),
    _param(
        "method",
        "How the host is powered off",
        "poweroff: `systemctl poweroff -ff` (reboot: `systemctl reboot -ff`), immediate, no "
        "service is stopped; sysrq: `echo o > /proc/sysrq-trigger` (reboot: `echo b`), for "
        "hosts without systemd. Both skip syncing disks on purpose: a fenced node must stop now.",
        default="poweroff",
        type_="select",
        options=("poweroff", "sysrq"),
    ),
    _param(
        "command_off",
        "Remote command replacing the off command",
        "Run by the remote user's shell instead of the method's off command: for tests and for "
        "hosts where neither systemctl nor sysrq fits. It must make the host stop answering.",
    ),
    _param(
        "command_reboot",
        "Remote command replacing the reboot command",
        "As command_off, for reboot.",
    ),
    _param(
        "confirm_timeout",
        "Time allowed for the host to stop answering",
        "Seconds (or a duration such as 30s) after the command within which the host must stop "
        "answering ssh; default: all the time the call has left.",
        type_="second",
    ),
    _HOSTLIST,
)

IPMI_PARAMETERS: tuple[Parameter, ...] = (
    _param(
        "ipaddr",
        "BMC address",
        "Name or address of the node's BMC; default: the target (after pcmk_host_map).",
    ),
    _param("ipport", "BMC UDP port", "RMCP port of the BMC.", default="623", type_="integer"),
    _param("login", "BMC user", "ipmitool -U; default: the BMC's anonymous user."),
    _param(
        "password",
        "BMC password",
        "Handed to ipmitool through the IPMI_PASSWORD environment variable (-E), never on its "
        "command line, where every local user could read it in ps.",
    ),
    _param(
        "password_script",
        "Command printing the BMC password",
        "Run by /bin/sh; the first line it prints is the password (instead of password).",
    ),
    _param(
        "interface",
        "IPMI interface",
        "lanplus (IPMI 2.0, default) or lan (IPMI 1.5, for old BMCs).",
        default="lanplus",
        type_="select",
        options=("lanplus", "lan"),
    ),
    _param(
        "privlvl",
        "Privilege level",
        "Session privilege level: callback, user, operator or administrator.",
        default="administrator",
        type_="select",
        options=("callback", "user", "operator", "administrator"),
    ),
    _param(
        "cipher",
        "Cipher suite",
        "lanplus cipher suite id (0-17, ipmitool -C); default: ipmitool's choice.",
        type_="integer",
    ),
    _param(
        "method",
        "How reboot is done",
        "onoff (default): power off, confirm off through status, power on - as fence_ipmilan; "
        "cycle: one `chassis power cycle`, for BMCs that do not allow off then on (the off "
        "moment cannot be confirmed then).",
        default="onoff",
        type_="select",
        options=("onoff", "cycle"),
    ),
    _HOSTLIST,
)


# ------------------------------------------------------------------------ parameter checks


def _unknown(params: Mapping[str, str], known: Sequence[Parameter], agent: str) -> None:
    names = {p.name for p in known}
    for name in params:
        if name not in names:
            raise ValueError(
                f"{agent}: unknown parameter {name!r}; allowed: {', '.join(sorted(names))}"
            )


def _clean(name: str, value: str, *, option_like: bool = True) -> str:
    """A parameter value that cannot smuggle anything onto a command line."""
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"parameter {name}: {value!r} contains a line break or NUL; not allowed")
    if option_like and value.startswith("-"):
        raise ValueError(
            f"parameter {name}: {value!r} starts with '-', which a command would read as an "
            "option; not allowed"
        )
    return value


_HOST_RE = re.compile(r"[A-Za-z0-9_.:%\[\]-]+")
_USER_RE = re.compile(r"[A-Za-z0-9_.@\\][A-Za-z0-9_.@\\$-]*")


def _host(name: str, value: str) -> str:
    _clean(name, value)
    if not _HOST_RE.fullmatch(value):
        raise ValueError(
            f"parameter {name}: {value!r} is not a host name or address (letters, digits, "
            "'.', '-', '_', ':' and '%' only)"
        )
    return value


def _port(name: str, value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"parameter {name}: {value!r} is not a port number (1-65535)")
    return int(text)


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"parameter {name}: {value!r}; allowed: {', '.join(allowed)}")
    return value


def _names(name: str, value: str) -> tuple[str, ...]:
    items = tuple(i for i in re.split(r"[\s,]+", value) if i)
    for item in items:
        _clean(name, item)
    return items


def _action(call: DeviceCall) -> str:
    if call.action not in ACTIONS:
        raise ValueError(f"action {call.action!r}; allowed: {', '.join(ACTIONS)}")
    return call.action


def _target_host(call: DeviceCall, params: Mapping[str, str], param: str) -> str | None:
    """The host named by the param, else the port (target after pcmk_host_map), else target."""
    value = params.get(param) or call.port or call.target
    return _host(param, value) if value else None


def _require_host(host: str | None, param: str, action: str) -> str:
    if host is None:
        raise ValueError(f"parameter {param}: required for {action} when the call names no target")
    return host


@dataclass(frozen=True)
class SshConfig:
    """The checked parameters of one ssh device call."""

    host: str | None
    user: str
    identity_file: str | None
    port: int
    options: tuple[str, ...]  # Key=Value items for -o
    strict: str
    method: str
    command_off: str
    command_reboot: str
    confirm_timeout: float | None
    hostlist: tuple[str, ...] | None


_SSH_RESERVED = {
    "batchmode": "BatchMode",
    "connecttimeout": "ConnectTimeout",
    "stricthostkeychecking": "StrictHostKeyChecking",
    "serveraliveinterval": "ServerAliveInterval",
    "serveralivecountmax": "ServerAliveCountMax",
}
_SSH_COMMANDS = {
    "poweroff": ("systemctl poweroff -ff", "systemctl reboot -ff"),
    "sysrq": ("echo o > /proc/sysrq-trigger", "echo b > /proc/sysrq-trigger"),
}


def parse_ssh_options(value: str) -> tuple[str, ...]:
    """``ssh_options`` -> ``Key=Value`` items; ValueError for anything else or a reserved key."""
    _clean("ssh_options", value, option_like=False)
    items: list[str] = []
    for token in value.split():
        if token == "-o":
            continue
        match = re.fullmatch(r"(?:-o)?([A-Za-z][A-Za-z0-9]*)=(\S+)", token)
        if not match:
            raise ValueError(
                f"parameter ssh_options: {token!r} is not a Key=Value ssh option "
                "(items are separated by spaces, e.g. 'UserKnownHostsFile=/path Ciphers=...')"
            )
        key = match.group(1)
        if key.lower() in _SSH_RESERVED:
            raise ValueError(
                f"parameter ssh_options: {key} is set by the device (BatchMode=yes, "
                "ConnectTimeout from the call's timeout, StrictHostKeyChecking from "
                "strict_host_key_checking, ServerAlive* to notice a vanished host); "
                "not allowed here"
            )
        items.append(f"{key}={match.group(2)}")
    return tuple(items)


def _duration(name: str, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"parameter {name}: {exc}") from None
    if seconds <= 0:
        raise ValueError(f"parameter {name}: {value!r} must be more than 0 seconds")
    return seconds


def ssh_config(call: DeviceCall) -> SshConfig:
    """Check and read an ssh device call's parameters; ValueError names the bad one."""
    params = call.params
    _unknown(params, SSH_PARAMETERS, "hastack/ssh")
    user = _clean("user", params.get("user") or "root")
    if not _USER_RE.fullmatch(user):
        raise ValueError(f"parameter user: {user!r} is not a user name")
    identity = params.get("identity_file") or None
    if identity is not None:
        _clean("identity_file", identity)
    method = _choice("method", params.get("method") or "poweroff", tuple(_SSH_COMMANDS))
    off, reboot = _SSH_COMMANDS[method]
    command_off = _clean("command_off", params.get("command_off") or off, option_like=False)
    command_reboot = _clean(
        "command_reboot", params.get("command_reboot") or reboot, option_like=False
    )
    confirm = params.get("confirm_timeout")
    hostlist = params.get("hostlist")
    return SshConfig(
        host=_target_host(call, params, "hostname"),
        user=user,
        identity_file=identity,
        port=_port("ssh_port", params.get("ssh_port") or "22"),
        options=parse_ssh_options(params.get("ssh_options") or ""),
        strict=_choice(
            "strict_host_key_checking",
            params.get("strict_host_key_checking") or "yes",
            ("yes", "accept-new", "no"),
        ),
        method=method,
        command_off=command_off,
        command_reboot=command_reboot,
        confirm_timeout=_duration("confirm_timeout", confirm) if confirm else None,
        hostlist=_names("hostlist", hostlist) if hostlist is not None else None,
    )


def ssh_argv(cfg: SshConfig, host: str, command: str, connect_timeout: int) -> list[str]:
    """The ssh command line that runs `command` on `host`: never prompts (BatchMode), gives up
    connecting after `connect_timeout` s, and notices a host that vanishes mid-session."""
    argv = [
        "ssh",
        "-T",  # no tty: nothing to talk to
        "-x",  # no X11 and no agent forwarding: the host gets nothing of ours
        "-a",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={max(1, connect_timeout)}",
        "-o", f"StrictHostKeyChecking={cfg.strict}",
        "-o", f"ServerAliveInterval={_ALIVE_INTERVAL}",
        "-o", f"ServerAliveCountMax={_ALIVE_COUNT}",
        "-p", str(cfg.port),
        "-l", cfg.user,
    ]  # fmt: skip
    if cfg.identity_file:
        argv += ["-i", cfg.identity_file, "-o", "IdentitiesOnly=yes"]
    for option in cfg.options:
        argv += ["-o", option]
    return [*argv, "--", host, command]


SshOutcome = Literal[
    "ok",
    "remote-failed",
    "silent",
    "refused",
    "alive-no-ssh",
    "lost",
    "auth",
    "hostkey",
    "resolve",
    "other",
]

# stderr of ssh (exit 255) -> what it says about the host. Order matters: the first match wins.
_SSH_PATTERNS: tuple[tuple[str, SshOutcome], ...] = (
    (r"host key verification failed|remote host identification has changed"
     r"|no \S+ host key is known|host key for .* has changed", "hostkey"),
    (r"permission denied|too many authentication failures|no supported authentication",
     "auth"),
    (r"could not resolve hostname|name or service not known|temporary failure in name",
     "resolve"),
    (r"timeout, server .* not responding", "lost"),
    (r"banner exchange|kex_exchange_identification|connection reset|connection closed"
     r"|broken pipe", "alive-no-ssh"),
    (r"connection refused", "refused"),
    (r"connection timed out|operation timed out|no route to host|host is unreachable"
     r"|network is unreachable", "silent"),
)  # fmt: skip


def classify_ssh(rc: int | None, stderr: str) -> SshOutcome:
    """What one ssh run says about the host.

    ``silent``: nothing answered (the only outcome that can mean "powered off");
    ``refused``: the host's kernel answered with a reset; ``alive-no-ssh``: TCP connected but
    ssh did not complete; ``lost``: the session was up and the host stopped answering; ``auth``
    and ``hostkey``: sshd answered and we refused or were refused; ``remote-failed``: the remote
    command ran and exited non-zero; ``ok``: it exited 0.
    """
    if rc == 0:
        return "ok"
    if rc is not None and rc != 255:
        return "remote-failed"
    text = stderr.lower()
    for pattern, outcome in _SSH_PATTERNS:
        if re.search(pattern, text):
            return outcome
    return "other"


@dataclass(frozen=True)
class _Run:
    rc: int | None  # None: killed by us at the deadline
    stdout: str
    stderr: str
    seconds: float


async def _run(argv: Sequence[str], budget: float, env: Mapping[str, str] | None = None) -> _Run:
    """Run argv for at most `budget` s (then SIGKILL); its own session, stdin closed."""
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), max(0.0, budget))
        rc: int | None = proc.returncode
    except TimeoutError:
        rc, out, err = None, b"", b""
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                # Cancelled or timed out: the child is reaped, never left behind.
                out2, err2 = await asyncio.shield(proc.communicate())
                out, err = out or out2, err or err2
    return _Run(
        rc,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - start,
    )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class _Clock:
    def __init__(self, timeout: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + max(0.0, timeout)

    def left(self, until: float | None = None) -> float:
        return max(0.0, min(self.deadline, until or self.deadline) - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class _Transcript:
    """What the device did, for the result's ``output`` (the fence history shows it)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, what: str, run: _Run) -> None:
        status = "killed at the deadline" if run.rc is None else f"rc {run.rc}"
        self.lines.append(f"{what}: {status} after {run.seconds:.1f}s")
        for text in (run.stdout, run.stderr):
            self.lines += [f"  {line}" for line in text.splitlines() if line.strip()]

    def text(self) -> str:
        return "\n".join(self.lines)


def _result(
    clock: _Clock,
    log: _Transcript,
    ok: bool,
    summary: str,
    *,
    power: Literal["on", "off"] | None = None,
    rc: int | None = None,
    targets: tuple[str, ...] | None = None,
    output: str | None = None,
) -> DeviceResult:
    """A failure's `summary` is its reason; a success has no reason (the runners' contract),
    so its summary opens the output, where the fence history keeps it."""
    text = log.text() if output is None else output
    if ok and output is None:
        text = f"{summary}\n{text}" if text else summary
    return DeviceResult(
        ok=ok,
        power=power,
        targets=targets,
        rc=rc,
        reason="" if ok else summary,
        output=text,
        seconds=clock.elapsed(),
    )


# ------------------------------------------------------------------------ ssh device


def _ssh_problem(host: str, outcome: SshOutcome, run: _Run) -> str:
    detail = _first_line(run.stderr)
    suffix = f" ({detail})" if detail else ""
    if run.rc is None:
        return f"ssh to {host} did not finish within the time allowed"
    return {
        "silent": f"{host} does not answer ssh{suffix}: {NOT_CONFIRMABLE}",
        "refused": f"{host} refuses ssh connections{suffix}: its kernel is up, but there is "
        "no sshd to power it off through",
        "alive-no-ssh": f"{host} accepts TCP but ssh does not complete{suffix}: the host is "
        "up but cannot be reached through ssh",
        "lost": f"{host} stopped answering in the middle of the ssh session{suffix}",
        "auth": f"ssh login to {host} as the configured user was refused{suffix}: check "
        "identity_file and the host's authorized_keys",
        "hostkey": f"{host}'s ssh host key is not the known one{suffix}: add its key to "
        "known_hosts (an unknown key is never accepted for fencing)",
        "resolve": f"{host} cannot be resolved{suffix}",
        "remote-failed": f"the command on {host} failed with rc {run.rc}{suffix}",
        "other": f"ssh to {host} failed{suffix}",
        "ok": "",
    }[outcome]


async def _ssh_once(
    cfg: SshConfig, host: str, command: str, clock: _Clock, until: float | None, cap: float
) -> tuple[SshOutcome, _Run]:
    """One ssh run of `command`, bounded by min(cap, time left until `until`)."""
    budget = min(cap, clock.left(until))
    connect = int(min(PROBE_CONNECT_MAX, max(1.0, budget - 1.0)))
    run = await _run(ssh_argv(cfg, host, command, connect), budget)
    return classify_ssh(run.rc, run.stderr), run


async def run_ssh(call: DeviceCall) -> DeviceResult:
    """Run one action of a ``hastack/ssh`` device. ValueError for bad parameters.

    off/reboot: the host must answer (``ssh true``), then the power-off command runs, then the
    host must go silent within confirm_timeout (default: the call's timeout). on: always a
    failure (a host that is off runs no sshd). status: on when the host answers ssh, unknown
    (ok=False) when it is silent. monitor: the ssh client exists and the key is readable.
    list: the hostlist parameter.

    ssh always runs with BatchMode=yes (a fence must never wait for a password prompt) and,
    by default, StrictHostKeyChecking=yes. Accepting an unknown host key is wrong for fencing:
    whoever answers at the address first - a reinstalled or replaced machine, an address
    taken over by another host, an attacker - would be the one told to power off, and its
    going silent would then "confirm" the real node dead while that node still runs its
    resources. accept-new and no exist for labs; they are never the default.
    """
    action = _action(call)
    cfg = ssh_config(call)
    clock = _Clock(call.timeout)
    log = _Transcript()
    if action == "metadata":
        return _result(clock, log, True, "metadata", output=metadata_xml("hastack/ssh"))
    if action == "list":
        return _list(clock, log, cfg.hostlist)
    if action == "monitor":
        return _ssh_monitor(clock, log, cfg)
    if action == "on":
        return _result(
            clock,
            log,
            False,
            "the ssh device cannot power a host on (a host that is off runs no sshd); "
            "use ipmi or a power switch",
        )
    host = _require_host(cfg.host, "hostname", action)
    if action == "status":
        outcome, run = await _ssh_once(cfg, host, "true", clock, None, clock.left())
        log.add(f"ssh {host} true", run)
        if outcome == "ok":
            return _result(clock, log, True, f"{host} answers ssh", power="on", rc=0)
        # Anything but silence means something answered at that address: the host is up.
        power: Literal["on"] | None = None if outcome in ("silent", "resolve", "other") else "on"
        if run.rc is None:
            power = None
        reason = _ssh_problem(host, outcome, run)
        if outcome == "silent" and run.rc is not None:
            reason = (
                f"{host} does not answer ssh ({_first_line(run.stderr)}): its power is unknown, "
                "since ssh cannot tell a host that is off from one that is cut off"
            )
        return _result(clock, log, False, reason, power=power, rc=run.rc)
    return await _ssh_power_off(call, cfg, host, action, clock, log)


def _ssh_monitor(clock: _Clock, log: _Transcript, cfg: SshConfig) -> DeviceResult:
    if shutil.which("ssh") is None:
        return _result(
            clock, log, False, "the ssh client is not installed (Debian: openssh-client)"
        )
    if cfg.identity_file and not os.access(cfg.identity_file, os.R_OK):
        return _result(clock, log, False, f"identity_file {cfg.identity_file} is not readable")
    return _result(
        clock,
        log,
        True,
        "ssh client present" + (f", key {cfg.identity_file} readable" if cfg.identity_file else ""),
    )


def _list(clock: _Clock, log: _Transcript, hostlist: tuple[str, ...] | None) -> DeviceResult:
    if hostlist is None:
        return _result(
            clock,
            log,
            False,
            "this device cannot discover its hosts: set hostlist (or pcmk_host_list)",
        )
    return _result(clock, log, True, f"{len(hostlist)} host(s) from hostlist", targets=hostlist)


async def _ssh_power_off(
    call: DeviceCall, cfg: SshConfig, host: str, action: str, clock: _Clock, log: _Transcript
) -> DeviceResult:
    # 1. The host must answer before we act: otherwise its going silent later proves nothing.
    outcome, run = await _ssh_once(cfg, host, "true", clock, None, clock.left())
    log.add(f"ssh {host} true (before {action})", run)
    if outcome != "ok":
        return _result(clock, log, False, _ssh_problem(host, outcome, run), rc=run.rc)
    # 2. The command. A host that powers off mid-session never ends it: we stop waiting after
    #    COMMAND_WAIT and let the polls decide; only a command that ran and failed ends here.
    command = cfg.command_off if action == "off" else cfg.command_reboot
    outcome, run = await _ssh_once(cfg, host, command, clock, None, COMMAND_WAIT)
    log.add(f"ssh {host} {command}", run)
    if outcome in ("remote-failed", "auth", "hostkey", "resolve", "refused"):
        return _result(clock, log, False, _ssh_problem(host, outcome, run), rc=run.rc)
    # 3. Poll until the host is silent. Only a probe that finished tells something: one cut
    #    short by the deadline is neither an answer nor silence.
    until = time.monotonic() + cfg.confirm_timeout if cfg.confirm_timeout else None
    answered: SshOutcome | None = None
    while clock.left(until) > 0:
        outcome, run = await _ssh_once(cfg, host, "true", clock, until, clock.left(until))
        log.add(f"ssh {host} true (confirming {action})", run)
        if outcome == "silent":
            return _result(
                clock,
                log,
                True,
                f"{host} stopped answering ssh {clock.elapsed():.1f}s after the {action} command",
                power="off",
                rc=0,
            )
        if run.rc is not None:
            answered = outcome
        await asyncio.sleep(min(POLL_INTERVAL, clock.left(until)))
    up = answered in ("ok", "auth", "hostkey", "refused", "alive-no-ssh")
    seen = (
        f"it still answered ssh ({_ANSWERS[answered]})"
        if up and answered
        else ("it was never seen silent")
    )
    return _result(
        clock,
        log,
        False,
        f"{host} not confirmed off {clock.elapsed():.1f}s after the {action} command: {seen}",
        power="on" if up else None,
    )


_ANSWERS: dict[SshOutcome, str] = {
    "ok": "logged in",
    "auth": "login refused",
    "hostkey": "host key mismatch",
    "refused": "connection refused",
    "alive-no-ssh": "TCP accepted, ssh incomplete",
}


# ------------------------------------------------------------------------ ipmi device


@dataclass(frozen=True)
class IpmiConfig:
    """The checked parameters of one ipmi device call."""

    host: str | None
    port: int
    login: str | None
    password: str | None
    password_script: str | None
    interface: str
    privlvl: str
    cipher: int | None
    method: str
    hostlist: tuple[str, ...] | None


def ipmi_config(call: DeviceCall) -> IpmiConfig:
    """Check and read an ipmi device call's parameters; ValueError names the bad one."""
    params = call.params
    _unknown(params, IPMI_PARAMETERS, "hastack/ipmi")
    login = params.get("login") or None
    if login is not None:
        _clean("login", login)
    password = params.get("password") or None
    if password is not None:
        _clean("password", password, option_like=False)
    script = params.get("password_script") or None
    if script is not None:
        _clean("password_script", script, option_like=False)
    if password is not None and script is not None:
        raise ValueError("parameters password and password_script: give one, not both")
    cipher_text = params.get("cipher") or None
    cipher = None
    if cipher_text is not None:
        if not cipher_text.strip().isdigit() or int(cipher_text) > 17:
            raise ValueError(f"parameter cipher: {cipher_text!r}; allowed: 0-17")
        cipher = int(cipher_text)
    hostlist = params.get("hostlist")
    return IpmiConfig(
        host=_target_host(call, params, "ipaddr"),
        port=_port("ipport", params.get("ipport") or "623"),
        login=login,
        password=password,
        password_script=script,
        interface=_choice("interface", params.get("interface") or "lanplus", ("lanplus", "lan")),
        privlvl=_choice(
            "privlvl",
            (params.get("privlvl") or "administrator").lower(),
            ("callback", "user", "operator", "administrator"),
        ),
        cipher=cipher,
        method=_choice("method", params.get("method") or "onoff", ("onoff", "cycle")),
        hostlist=_names("hostlist", hostlist) if hostlist is not None else None,
    )


def ipmitool_argv(
    cfg: IpmiConfig, host: str, command: Sequence[str], has_password: bool
) -> list[str]:
    """The ipmitool command line; the password never appears on it (-E reads IPMI_PASSWORD).
    -N 1 -R 2 keep one call short: the caller's deadline kills it anyway, but a BMC that does
    not answer should fail with ipmitool's own message rather than be killed silently."""
    argv = ["ipmitool", "-I", cfg.interface, "-H", host, "-p", str(cfg.port)]
    if cfg.login:
        argv += ["-U", cfg.login]
    if has_password:
        argv.append("-E")
    argv += ["-L", cfg.privlvl.upper(), "-N", "1", "-R", "2"]
    if cfg.cipher is not None:
        argv += ["-C", str(cfg.cipher)]
    return [*argv, "-v", *command]


_POWER_RE = re.compile(r"^Chassis Power is (on|off)\s*$", re.MULTILINE)


def parse_power_status(stdout: str) -> Literal["on", "off"] | None:
    """``Chassis Power is on|off`` -> "on"/"off"; None for anything else."""
    match = _POWER_RE.search(stdout)
    if match is None:
        return None
    return "on" if match.group(1) == "on" else "off"


def classify_ipmitool(stderr: str) -> str:
    """A reason for a failed ipmitool run, from what it printed (with -v)."""
    text = stderr.lower()
    if "rakp 2 hmac is invalid" in text or ("password" in text and "invalid" in text):
        return "the BMC refused the password"
    if "unauthorized name" in text or "invalid user name" in text:
        return "the BMC does not know the login"
    if "insufficient privilege" in text or "privilege level" in text:
        return "the login's privilege level does not allow this (privlvl)"
    if "invalid authentication algorithm" in text or "cipher suite" in text:
        return "the BMC does not support this cipher suite (cipher)"
    if "get auth capabilities error" in text or "unable to establish" in text:
        return "no IPMI session with the BMC (no answer, or it refused the session)"
    return "ipmitool failed"


async def _password(cfg: IpmiConfig, clock: _Clock, log: _Transcript) -> str | None:
    if cfg.password_script is None:
        return cfg.password
    run = await _run(["/bin/sh", "-c", cfg.password_script], clock.left())
    # Never log what the script printed: it is the password.
    log.lines.append(
        "password_script: " + ("killed at the deadline" if run.rc is None else f"rc {run.rc}")
    )
    if run.rc != 0:
        raise _IpmiFailure(
            "password_script "
            + ("did not finish in time" if run.rc is None else f"failed with rc {run.rc}")
            + (f": {_first_line(run.stderr)}" if run.stderr.strip() else "")
        )
    lines = run.stdout.splitlines()
    return lines[0] if lines else ""


class _IpmiFailure(Exception):
    """A step of an ipmi action failed; the message is the result's reason."""

    def __init__(self, reason: str, rc: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rc = rc


class _Bmc:
    """ipmitool calls against one BMC within one call's deadline."""

    def __init__(
        self, cfg: IpmiConfig, host: str, password: str | None, clock: _Clock, log: _Transcript
    ) -> None:
        self.cfg = cfg
        self.host = host
        self.password = password
        self.clock = clock
        self.log = log

    async def ipmitool(self, *command: str) -> _Run:
        env = dict(os.environ)
        env.pop("IPMI_PASSWORD", None)
        if self.password:
            env["IPMI_PASSWORD"] = self.password
        argv = ipmitool_argv(self.cfg, self.host, command, bool(self.password))
        run = await _run(argv, self.clock.left(), env)
        # -v adds chatter on stderr; keep only lines that say what went wrong.
        self.log.add(
            f"ipmitool -H {self.host} {' '.join(command)}",
            _Run(run.rc, run.stdout, _ipmitool_errors(run.stderr), run.seconds),
        )
        if run.rc is None:
            raise _IpmiFailure(
                f"the BMC {self.host}:{self.cfg.port} did not answer within the time allowed "
                f"({' '.join(command)})"
            )
        if run.rc != 0:
            detail = _first_line(_ipmitool_errors(run.stderr))
            raise _IpmiFailure(
                f"{' '.join(command)} on BMC {self.host}:{self.cfg.port} failed: "
                f"{classify_ipmitool(run.stderr)}" + (f" ({detail})" if detail else ""),
                run.rc,
            )
        return run

    async def status(self) -> Literal["on", "off"]:
        run = await self.ipmitool("chassis", "power", "status")
        power = parse_power_status(run.stdout)
        if power is None:
            raise _IpmiFailure(
                f"BMC {self.host} answered power status with {_first_line(run.stdout)!r}, "
                "not 'Chassis Power is on/off'",
                run.rc,
            )
        return power

    async def set_and_confirm(self, want: Literal["on", "off"]) -> None:
        """chassis power on/off, then status until it says `want` (the BMC may lag)."""
        await self.ipmitool("chassis", "power", want)
        while True:
            if await self.status() == want:
                return
            if self.clock.left() <= POLL_INTERVAL:
                raise _IpmiFailure(
                    f"BMC {self.host} still reports power not {want} "
                    f"{self.clock.elapsed():.1f}s after 'chassis power {want}'"
                )
            await asyncio.sleep(POLL_INTERVAL)


def _ipmitool_errors(stderr: str) -> str:
    noise = (
        "loading iana pen registry",
        "running get vso",
        "discovered ipmb",
        "invalid completion code received: invalid command",
        "get hpm.x capabilities",
    )
    keep = [
        line
        for line in stderr.splitlines()
        if line.strip() and not any(n in line.lower() for n in noise)
    ]
    return "\n".join(keep)


async def run_ipmi(call: DeviceCall) -> DeviceResult:
    """Run one action of a ``hastack/ipmi`` device through ipmitool. ValueError for bad
    parameters.

    ``off``/``on`` succeed once status confirms the new state; ``reboot`` (method onoff) is off
    confirmed, then on: once off is confirmed the node is fenced, so a failing power-on still
    succeeds, with the reason saying so. ``monitor`` asks the BMC for the power status: a device
    that cannot do that cannot fence either.
    """
    action = _action(call)
    cfg = ipmi_config(call)
    clock = _Clock(call.timeout)
    log = _Transcript()
    if action == "metadata":
        return _result(clock, log, True, "metadata", output=metadata_xml("hastack/ipmi"))
    if action == "list":
        return _list(clock, log, cfg.hostlist)
    host = _require_host(cfg.host, "ipaddr", action)
    if shutil.which("ipmitool") is None:
        return _result(clock, log, False, "ipmitool is not installed (Debian: ipmitool)")
    try:
        bmc = _Bmc(cfg, host, await _password(cfg, clock, log), clock, log)
        if action in ("status", "monitor"):
            power = await bmc.status()
            return _result(clock, log, True, f"BMC {host} says power is {power}", power=power, rc=0)
        if action == "on":
            await bmc.set_and_confirm("on")
            return _result(clock, log, True, f"{host} powered on (confirmed)", power="on", rc=0)
        if action == "reboot" and cfg.method == "cycle":
            await bmc.ipmitool("chassis", "power", "cycle")
            return _result(
                clock,
                log,
                True,
                f"{host} power cycled (the off moment cannot be confirmed with method=cycle)",
                rc=0,
            )
        if await bmc.status() == "off":
            done = f"{host} was already off (confirmed)"
        else:
            await bmc.set_and_confirm("off")
            done = f"{host} powered off (confirmed)"
        if action == "off":
            return _result(clock, log, True, done, power="off", rc=0)
        try:
            await bmc.set_and_confirm("on")
        except _IpmiFailure as exc:
            return _result(
                clock, log, True, f"{done}, but not back on: {exc.reason}", power="off", rc=exc.rc
            )
        return _result(clock, log, True, f"{done}, then powered on", power="on", rc=0)
    except _IpmiFailure as exc:
        return _result(clock, log, False, exc.reason, rc=exc.rc)


# ------------------------------------------------------------------------ metadata


def metadata(kind: str) -> DeviceMetadata:
    """The parsed metadata of ``hastack/ssh`` (kind "ssh") or ``hastack/ipmi`` ("ipmi"), as
    :func:`hastack.fencing.runners.agent_metadata` asks for it."""
    agent = f"hastack/{kind}"
    if agent not in _DESCRIPTIONS:
        raise ValueError(f"kind {kind!r}; allowed: ssh, ipmi")
    return parse_agent_metadata(metadata_xml(agent), agent, "hastack")


_DESCRIPTIONS = {
    "hastack/ssh": (
        "Power a host off through ssh",
        "Logs in with ssh (BatchMode, known host keys only), powers the host off and confirms "
        "it stopped answering. Cannot power on, and cannot confirm a host that does not answer "
        "in the first place: prefer ipmi or a power switch.",
        SSH_PARAMETERS,
    ),
    "hastack/ipmi": (
        "Power a node off through its BMC (ipmitool)",
        "chassis power off/on/cycle/status through ipmitool over lan or lanplus; off and on "
        "are confirmed by polling the power status.",
        IPMI_PARAMETERS,
    ),
}


def metadata_xml(agent: str) -> str:
    """The device's meta-data in the fence-agents/OCF ``<resource-agent>`` form."""
    shortdesc, longdesc, parameters = _DESCRIPTIONS[agent]
    root = etree.Element("resource-agent", name=agent, shortdesc=shortdesc)
    etree.SubElement(root, "longdesc").text = longdesc
    etree.SubElement(root, "shortdesc").text = shortdesc
    group = etree.SubElement(root, "parameters")
    for param in parameters:
        element = etree.SubElement(
            group, "parameter", name=param.name, required="1" if param.required else "0"
        )
        content = etree.SubElement(element, "content", type=param.type)
        if param.default is not None:
            content.set("default", param.default)
        for option in param.options:
            etree.SubElement(content, "option", value=option)
        etree.SubElement(element, "shortdesc").text = param.shortdesc
        etree.SubElement(element, "longdesc").text = param.longdesc
    actions = etree.SubElement(root, "actions")
    for action in ACTIONS:
        if agent == "hastack/ssh" and action == "on":
            continue
        etree.SubElement(actions, "action", name=action)
    return etree.tostring(root, pretty_print=True, encoding="unicode")
