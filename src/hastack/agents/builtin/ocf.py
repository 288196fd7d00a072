"""What every built-in OCF agent shares: its description, its parameters, its exit codes.

An agent is an `AgentInfo` (name, parameters with defaults, advised action timeouts) plus one
handler per action. `main()` does the OCF plumbing the way resource-agents' shell functions do:
`meta-data` prints the description as ra-api-1.dtd XML, `usage`/`help` print the usage, an
unknown action prints the usage and exits 3 (unimplemented), a wrong number of arguments exits 2;
parameters come from `OCF_RESKEY_<name>` with the agent's own meta-data defaults; an `OcfError`
raised by a handler becomes its rc plus an `ocf-exit-reason:` line on stderr, which Pacemaker
(and hastack's runner) keep as the operation's exit reason.

Only the standard library is imported here: `meta-data` must work for any user and interpreter
(ocf-tester runs it as `nobody`).
"""

from __future__ import annotations

import contextvars
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn, TextIO

import hastack
from hastack.agents.rc import OcfRc  # agents import it from here, with the rest

OCF_API_VERSION = "1.1"
EXIT_REASON_PREFIX = "ocf-exit-reason:"
ParamType = Literal["string", "integer", "boolean", "time"]

_TRUE = {"1", "yes", "true", "on", "y"}
_FALSE = {"0", "no", "false", "off", "n"}


@dataclass(frozen=True)
class Param:
    """One agent parameter. `default` may name `{instance}`, `{HA_RSCTMP}` or `{HA_VARRUN}`:
    like resource-agents, the default is computed for the resource at hand, and `meta-data`
    prints the computed value."""

    name: str
    shortdesc: str
    longdesc: str = ""
    type: ParamType = "string"
    default: str | None = None
    required: bool = False
    unique: bool = False


@dataclass(frozen=True)
class Action:
    """An action as meta-data advertises it (timeouts and intervals in seconds)."""

    name: str
    timeout: int
    interval: int | None = None
    depth: int | None = None
    role: str | None = None


@dataclass(frozen=True)
class AgentInfo:
    name: str
    shortdesc: str
    longdesc: str
    params: tuple[Param, ...]
    actions: tuple[Action, ...]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def action_names(self) -> list[str]:
        seen: list[str] = []
        for a in self.actions:
            if a.name not in seen:
                seen.append(a.name)
        return seen


class OcfError(Exception):
    """Ends the action with `rc`; `reason` goes to stderr as the OCF exit reason."""

    def __init__(self, rc: int, reason: str) -> None:
        super().__init__(reason)
        self.rc = int(rc)
        self.reason = reason


# Where an agent's diagnostics go: stderr when it runs as a process; a buffer of its own when
# the node daemon runs it in-process (hastack.agents.inprocess), so that concurrent actions in
# threads keep their exit reasons apart.
_ERRORS: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar("ocf_errors", default=None)
# Set while running inside the node daemon: an agent must not fork or exit the process there.
IN_PROCESS: contextvars.ContextVar[bool] = contextvars.ContextVar("ocf_in_process", default=False)


def error_stream() -> TextIO:
    stream = _ERRORS.get()
    return sys.stderr if stream is None else stream


def exit_reason(message: str) -> None:
    """Print one exit-reason line the way ocf_exit_reason does (one line, on stderr)."""
    one_line = " ".join(message.split())
    print(f"{EXIT_REASON_PREFIX}{one_line}", file=error_stream(), flush=True)


def log(message: str) -> None:
    """A diagnostic line on stderr (kept by the runner in the operation's output)."""
    print(message, file=error_stream(), flush=True)


@dataclass
class Context:
    """What one action sees: the resource, its parameters (defaults filled in) and meta."""

    info: AgentInfo
    action: str
    instance: str
    env: Mapping[str, str]
    params: dict[str, str] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, str]:
        """`OCF_RESKEY_CRM_meta_<name>` values by name (interval, timeout, clone, notify_*)."""
        prefix = "OCF_RESKEY_CRM_meta_"
        return {k[len(prefix) :]: v for k, v in self.env.items() if k.startswith(prefix)}

    def param(self, name: str) -> str:
        """The value (default applied, "" when neither set nor defaulted)."""
        self.info.param(name)  # a typo in an agent is a KeyError, not a silent ""
        return self.params.get(name, "")

    def int_param(self, name: str, minimum: int | None = None) -> int:
        text = self.param(name).strip()
        try:
            value = int(text)
        except ValueError:
            raise OcfError(
                OcfRc.ERR_CONFIGURED, f"parameter {name}={text!r} is not an integer"
            ) from None
        if minimum is not None and value < minimum:
            raise OcfError(OcfRc.ERR_CONFIGURED, f"parameter {name}={value} is below {minimum}")
        return value

    def float_param(self, name: str, minimum: float = 0.0) -> float:
        text = self.param(name).strip()
        try:
            value = parse_seconds(text)
        except ValueError:
            raise OcfError(
                OcfRc.ERR_CONFIGURED,
                f"parameter {name}={text!r} is not a duration (seconds, or 500ms, 2s, 1min)",
            ) from None
        if value < minimum:
            raise OcfError(OcfRc.ERR_CONFIGURED, f"parameter {name}={text} is below {minimum}")
        return value

    def bool_param(self, name: str) -> bool:
        text = self.param(name).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE or text == "":
            return False
        raise OcfError(
            OcfRc.ERR_CONFIGURED,
            f"parameter {name}={self.param(name)!r} is not a boolean (true/false, yes/no, 1/0)",
        )

    def _meta_ms(self, name: str) -> int:
        try:
            return int(self.env.get(f"OCF_RESKEY_CRM_meta_{name}", "0") or "0")
        except ValueError:
            return 0

    @property
    def interval_ms(self) -> int:
        return self._meta_ms("interval")

    @property
    def timeout_ms(self) -> int:
        return self._meta_ms("timeout")

    @property
    def is_probe(self) -> bool:
        """A one-shot monitor: Pacemaker's probe, which must say 7 for "not here", even when
        the configuration cannot work on this node."""
        return self.action == "monitor" and self.interval_ms == 0

    @property
    def check_level(self) -> int:
        """OCF_CHECK_LEVEL, as Pacemaker passes it (an op's OCF_CHECK_LEVEL attribute arrives
        as OCF_RESKEY_OCF_CHECK_LEVEL; ocf-shellfuncs maps it the same way)."""
        text = self.env.get("OCF_RESKEY_OCF_CHECK_LEVEL") or self.env.get("OCF_CHECK_LEVEL", "0")
        try:
            return int(text or "0")
        except ValueError:
            raise OcfError(
                OcfRc.ERR_CONFIGURED, f"OCF_CHECK_LEVEL={text!r} is not 0, 10 or 20"
            ) from None


Handler = Callable[[Context], int]


def parse_seconds(text: str) -> float:
    """Seconds from "5", "5s", "500ms", "2min", "1m" or "1h" (agents' own time parameters)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|hr)?\s*", text)
    if not match:
        raise ValueError(text)
    value = float(match.group(1))
    unit = match.group(2) or "s"
    scale = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}[unit]
    return value * scale


def default_instance(env: Mapping[str, str], action: str) -> str | None:
    """OCF_RESOURCE_INSTANCE, or what ocf-shellfuncs falls back to, or None (an error)."""
    instance = env.get("OCF_RESOURCE_INSTANCE", "")
    if instance:
        return instance
    if action in ("meta-data", "usage", "help"):
        return "RESOURCE_ID"
    if not env.get("OCF_RA_VERSION_MAJOR"):
        return "default"  # called like an init script (ocf-tester, by hand)
    return None


def state_instance(instance: str, env: Mapping[str, str]) -> str:
    """The instance name for per-node state: an anonymous clone's ":N" is not stable across
    restarts of the cluster, so it is dropped unless the clone is globally unique."""
    unique = env.get("OCF_RESKEY_CRM_meta_globally_unique", "false").lower() in _TRUE
    return instance if unique else re.sub(r":\d+$", "", instance)


def template_values(instance: str, env: Mapping[str, str]) -> dict[str, str]:
    return {
        "instance": state_instance(instance, env),
        "HA_RSCTMP": env.get("HA_RSCTMP", "/run/resource-agents").rstrip("/") or "/",
        "HA_VARRUN": env.get("HA_VARRUN", "/run").rstrip("/") or "/",
    }


def resolve_params(info: AgentInfo, instance: str, env: Mapping[str, str]) -> dict[str, str]:
    """Each parameter's value from OCF_RESKEY_<name>, else its (expanded) default. An empty
    value counts as unset, as Pacemaker never passes empty instance attributes meaningfully."""
    values = template_values(instance, env)
    params: dict[str, str] = {}
    for p in info.params:
        given = env.get(f"OCF_RESKEY_{p.name}", "")
        if given != "":
            params[p.name] = given
        elif p.default is not None:
            params[p.name] = p.default.format_map(values)
    return params


def metadata_xml(info: AgentInfo, instance: str, env: Mapping[str, str]) -> str:
    """The agent's meta-data, valid against resource-agents' ra-api-1.dtd."""
    values = template_values(instance, env)
    root = ET.Element("resource-agent", name=info.name, version=hastack.__version__)
    ET.SubElement(root, "version").text = OCF_API_VERSION
    ET.SubElement(root, "longdesc", lang="en").text = info.longdesc.strip()
    ET.SubElement(root, "shortdesc", lang="en").text = info.shortdesc
    params = ET.SubElement(root, "parameters")
    for p in info.params:
        el = ET.SubElement(
            params,
            "parameter",
            name=p.name,
            required="1" if p.required else "0",
            unique="1" if p.unique else "0",
        )
        ET.SubElement(el, "longdesc", lang="en").text = (p.longdesc or p.shortdesc).strip()
        ET.SubElement(el, "shortdesc", lang="en").text = p.shortdesc
        content = ET.SubElement(el, "content", type=p.type)
        if p.default is not None:
            content.set("default", p.default.format_map(values))
    actions = ET.SubElement(root, "actions")
    for a in info.actions:
        el = ET.SubElement(actions, "action", name=a.name, timeout=f"{a.timeout}s")
        if a.interval is not None:
            el.set("interval", f"{a.interval}s")
        if a.depth is not None:
            el.set("depth", str(a.depth))
        if a.role is not None:
            el.set("role", a.role)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0"?>\n<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">\n{body}\n'


def usage_text(info: AgentInfo, prog: str) -> str:
    actions = " | ".join([*info.action_names, "usage"])
    return (
        f"usage: {prog} {{{actions}}}\n"
        f"{info.name}: {info.shortdesc}. An OCF resource agent (API {OCF_API_VERSION}): "
        "parameters come from OCF_RESKEY_<name> environment variables.\n"
    )


def check_required(info: AgentInfo, params: Mapping[str, str]) -> None:
    missing = [p.name for p in info.params if p.required and not params.get(p.name)]
    if missing:
        names = ", ".join(f"{n} (OCF_RESKEY_{n})" for n in missing)
        raise OcfError(OcfRc.ERR_CONFIGURED, f"required parameter missing: {names}")


# Actions that work without a configuration: they describe the agent or only listen.
_NO_CONFIG_ACTIONS = {"meta-data", "usage", "help"}


def run_agent(
    info: AgentInfo,
    handlers: Mapping[str, Handler],
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    prog: str | None = None,
) -> int:
    """Run one OCF action; return its exit code. Never raises for bad input."""
    env = os.environ if env is None else env
    prog = prog or info.name
    if len(argv) != 1:
        error_stream().write(usage_text(info, prog))
        exit_reason(f"{info.name} takes exactly one action argument, got {len(argv)}")
        return OcfRc.ERR_ARGS
    action = argv[0]
    if action in ("usage", "help", "--help", "-h"):
        sys.stdout.write(usage_text(info, prog))
        return OcfRc.SUCCESS
    instance = default_instance(env, action)
    if action == "meta-data":
        sys.stdout.write(metadata_xml(info, instance or "RESOURCE_ID", env))
        return OcfRc.SUCCESS
    if action not in handlers:
        error_stream().write(usage_text(info, prog))
        exit_reason(f"{info.name} does not implement the action {action!r}")
        return OcfRc.ERR_UNIMPLEMENTED
    if instance is None:
        exit_reason("OCF_RESOURCE_INSTANCE is not set: the resource needs a name")
        return OcfRc.ERR_ARGS
    ctx = Context(info, action, instance, env, resolve_params(info, instance, env))
    try:
        if action not in _NO_CONFIG_ACTIONS:
            check_required(info, ctx.params)
        return int(handlers[action](ctx))
    except OcfError as err:
        exit_reason(err.reason)
        return err.rc
    except KeyboardInterrupt:
        exit_reason(f"{action} interrupted")
        return OcfRc.ERR_GENERIC
    except Exception as err:  # an agent bug: one clear line, not a traceback, and a failure
        exit_reason(f"{action} failed: {type(err).__name__}: {err}")
        return OcfRc.ERR_GENERIC


def main(info: AgentInfo, handlers: Mapping[str, Handler]) -> NoReturn:
    sys.exit(run_agent(info, handlers, sys.argv[1:], prog=info.name))


def state_path(ctx: Context, name: str = "state") -> Path:
    """The parameter `name` as a Path, its directory created (HA_RSCTMP may not exist yet)."""
    path = Path(ctx.param(name))
    if not path.is_absolute():
        raise OcfError(
            OcfRc.ERR_CONFIGURED, f"parameter {name}={str(path)!r} must be an absolute path"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OcfError(OcfRc.ERR_PERM, f"cannot create {path.parent}: {err.strerror}") from None
    return path


def write_file(path: Path, text: str) -> None:
    """Write atomically, so a monitor never reads half a state file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot write {path}: {err.strerror}") from None
