"""How each agent standard is called: argv and environment, and what its exit code means."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hastack.agents.names import (
    DEFAULT_PATHS,
    SANE_PATH,
    AgentError,
    AgentPaths,
    AgentSpec,
    Standard,
    locate,
    resolve_service,
)
from hastack.agents.rc import OcfRc, lsb_rc_to_ocf

# The OCF API version we implement (Pacemaker 2.1+ sets 1.1 too).
OCF_RA_VERSION_MAJOR = "1"
OCF_RA_VERSION_MINOR = "1"
# Pacemaker tells agents how to mark their exit reason on stderr.
OCF_EXIT_REASON_PREFIX = "ocf-exit-reason:"
# the timeout of an action when neither the configuration nor the agent gives one (Pacemaker's)
DEFAULT_TIMEOUT = 20.0

_LSB_ACTIONS = ("start", "stop", "status", "restart", "reload", "force-reload")
_SYSTEMD_ACTIONS = {
    "start": "start",
    "stop": "stop",
    "monitor": "is-active",
    "status": "is-active",
    "restart": "restart",
    "reload": "reload",
}
_R1_ACTIONS = ("start", "stop", "status")
# Units systemctl knows by suffix; a bare name means a service, as systemctl assumes.
_UNIT_SUFFIXES = (
    ".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
    ".timer", ".slice", ".scope",
)  # fmt: skip
_ENV_NAME_RE = re.compile(r"[^=\0\s]+")
_ACTION_RE = re.compile(r"[a-z][a-z0-9_-]*")


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Invocation:
    """One process to run: argv, its complete environment, and what was asked of it.

    ``action`` is the action as requested (e.g. "monitor"), ``argv`` holds the one the agent
    understands (e.g. "status" for LSB)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    standard: Standard
    action: str

    def __hash__(self) -> int:  # a mapping is not hashable: hash its items
        return hash((self.argv, tuple(sorted(self.env.items())), self.standard, self.action))


@dataclass(frozen=True)
class ResourceAgentCall:
    """Everything one action of one resource needs."""

    resource: str
    agent: AgentSpec
    action: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    meta: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    interval: float = 0.0  # seconds; becomes OCF_RESKEY_CRM_meta_interval in ms
    # seconds; becomes OCF_RESKEY_CRM_meta_timeout in ms. None: the timeout the agent's
    # meta-data advises for this action (LocalExecutor fills it in), else DEFAULT_TIMEOUT.
    timeout: float | None = None
    r1_args: tuple[str, ...] = ()  # heartbeat R1: the haresources NAME::ARG::ARG args

    @property
    def effective_timeout(self) -> float:
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout

    def __post_init__(self) -> None:
        # Copy the mappings so a caller changing its dict later cannot change this call.
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "meta", _frozen(self.meta))

    def __hash__(self) -> int:  # mappingproxy is not hashable: hash their items
        return hash(
            (
                self.resource,
                self.agent,
                self.action,
                tuple(sorted(self.params.items())),
                tuple(sorted(self.meta.items())),
                self.interval,
                self.timeout,
                self.r1_args,
            )
        )


def sane_path(inherited: str | None) -> str:
    """PATH with the system directories first, then the inherited entries not already there
    (agents call ip, mount, ... by name and must not pick up a caller's odd PATH first)."""
    parts = SANE_PATH.split(":")
    for entry in (inherited or "").split(":"):
        if entry and entry not in parts:
            parts.append(entry)
    return ":".join(parts)


def _base_env(base: Mapping[str, str] | None) -> dict[str, str]:
    """The inherited environment (as Pacemaker's executor passes its own on), without any
    OCF_* variables of the caller, which would leak into the agent's parameters."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("OCF_")}
    env["PATH"] = sane_path(source.get("PATH"))
    return env


def _check_env_value(call: ResourceAgentCall, name: str, value: str) -> None:
    if not isinstance(value, str) or "\0" in value:
        raise AgentError(f"resource {call.resource}: value of {name} must be text without NUL")


def _meta_name(name: str) -> str:
    # Pacemaker turns meta attribute names into CRM_meta_ names with "-" replaced by "_".
    return "OCF_RESKEY_CRM_meta_" + name.replace("-", "_")


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


def ocf_env(
    call: ResourceAgentCall, ocf_root: str, base: Mapping[str, str] | None
) -> dict[str, str]:
    """The environment Pacemaker's executor gives an OCF agent."""
    env = _base_env(base)
    for name, value in call.params.items():
        # Pacemaker passes any name on; only what cannot be an environment name is refused
        # (names that are not shell identifiers are legal, just unreadable by shell agents).
        if not _ENV_NAME_RE.fullmatch(name):
            raise AgentError(
                f"resource {call.resource}: bad parameter name {name!r}: "
                "a name must be non-empty, without '=', NUL or whitespace"
            )
        _check_env_value(call, name, value)
        env["OCF_RESKEY_" + name] = value
    for name, value in call.meta.items():
        if not _ENV_NAME_RE.fullmatch(name):
            raise AgentError(
                f"resource {call.resource}: bad meta attribute name {name!r}: "
                "a name must be non-empty, without '=', NUL or whitespace"
            )
        _check_env_value(call, name, value)
        env[_meta_name(name)] = value
    # The executor's own interval and timeout win over same-named meta attributes.
    env["OCF_RESKEY_CRM_meta_interval"] = _ms(call.interval)
    env["OCF_RESKEY_CRM_meta_timeout"] = _ms(call.effective_timeout)
    env["OCF_RA_VERSION_MAJOR"] = OCF_RA_VERSION_MAJOR
    env["OCF_RA_VERSION_MINOR"] = OCF_RA_VERSION_MINOR
    env["OCF_ROOT"] = ocf_root
    env["OCF_EXIT_REASON_PREFIX"] = OCF_EXIT_REASON_PREFIX
    env["OCF_RESOURCE_INSTANCE"] = call.resource
    env["OCF_RESOURCE_TYPE"] = call.agent.type
    if call.agent.provider is not None:
        env["OCF_RESOURCE_PROVIDER"] = call.agent.provider
    return env


def systemd_unit(name: str) -> str:
    """The unit name systemctl gets: ".service" added when the name has no unit suffix."""
    return name if name.endswith(_UNIT_SUFFIXES) else name + ".service"


def build_invocation(
    call: ResourceAgentCall,
    paths: AgentPaths = DEFAULT_PATHS,
    base_env: Mapping[str, str] | None = None,
) -> Invocation:
    """The process that performs `call`: OCF ``(path, action)`` with the OCF environment;
    LSB ``(path, start|stop|status)`` (monitor -> status); heartbeat R1
    ``(path, *r1_args, start|stop|status)``; systemd ``(systemctl, start|stop|is-active, UNIT)``.

    ``base_env`` is the environment to inherit (default: this process's). Raises AgentError when
    the agent cannot be found/run or the action or parameters do not fit its standard.
    """
    if not isinstance(call.action, str) or not _ACTION_RE.fullmatch(call.action):
        raise AgentError(
            f"resource {call.resource}: bad action {call.action!r}: use a name like start, "
            "stop, monitor"
        )
    if call.interval < 0 or call.effective_timeout <= 0:
        raise AgentError(
            f"resource {call.resource}: interval must be >= 0 and timeout > 0 "
            f"(got {call.interval}, {call.timeout})"
        )
    if call.agent.standard == "stonith":
        raise AgentError(
            f"resource {call.resource}: {call.agent} is a fence device: the fencer runs it "
            "(hastack fence test), not the resource executor"
        )
    spec = resolve_service(call.agent, paths)
    path = locate(spec, paths)
    action = call.action
    if spec.standard == "ocf":
        env = ocf_env(call, str(paths.ocf_root), base_env)
        return Invocation((str(path), action), _frozen(env), "ocf", action)
    env = _base_env(base_env)
    if spec.standard == "lsb":
        verb = "status" if action == "monitor" else action
        if verb not in _LSB_ACTIONS:
            raise AgentError(
                f"agent {spec}: LSB scripts have no {action!r} action; "
                f"use {', '.join(('monitor', *_LSB_ACTIONS))}"
            )
        return Invocation((str(path), verb), _frozen(env), "lsb", action)
    if spec.standard == "heartbeat":
        verb = "status" if action == "monitor" else action
        if verb not in _R1_ACTIONS:
            raise AgentError(
                f"agent {spec}: heartbeat R1 scripts have no {action!r} action; "
                "use start, stop, monitor/status"
            )
        for arg in call.r1_args:
            _check_env_value(call, "an R1 argument", arg)
        return Invocation((str(path), *call.r1_args, verb), _frozen(env), "heartbeat", action)
    # systemd (service: resolved above)
    verb = _SYSTEMD_ACTIONS.get(action)
    if verb is None:
        raise AgentError(
            f"agent {spec}: systemd units have no {action!r} action; "
            f"use {', '.join(_SYSTEMD_ACTIONS)}"
        )
    argv = (str(path), verb, systemd_unit(spec.type))
    return Invocation(argv, _frozen(env), "systemd", action)


_R1_NOT_RUNNING_RE = re.compile(r"not\s+running|stopped", re.IGNORECASE)
_R1_RUNNING_RE = re.compile(r"running|\bOK\b", re.IGNORECASE)


def _r1_status(exit_code: int, output: str) -> int:
    """heartbeat R1 ``status``.

    heartbeat's ResourceManager (we_own_resource in /usr/share/heartbeat/ResourceManager)
    ignores the exit code of ``status`` and greps its output: "not running" -> stopped,
    "running" or "OK" -> running, anything else -> stopped. The scripts in
    /etc/ha.d/resource.d (e.g. IPaddr2, via hto-mapfuncs' ra_execocf) run the OCF agent's
    monitor, print "INFO: <type> Running OK" or "INFO: <type> Resource is stopped", and exit
    with the OCF code (0 or 7). So: the output decides when it says running/stopped; otherwise
    the exit code as LSB status, where 7 (OCF not running, from the wrappers) is also stopped.
    """
    if output:
        if _R1_NOT_RUNNING_RE.search(output):
            return OcfRc.NOT_RUNNING
        if _R1_RUNNING_RE.search(output):
            return OcfRc.SUCCESS
    if exit_code == OcfRc.NOT_RUNNING:
        return OcfRc.NOT_RUNNING
    return lsb_rc_to_ocf("status", exit_code)


def interpret(inv: Invocation, exit_code: int, output: str = "") -> int:
    """The OCF rc for an exit code of `inv` (negative = killed by a signal -> generic error).

    OCF: 0-9 as-is, OCF 1.1's degraded codes 190/191 as-is, anything else generic error.
    LSB: lsb_rc_to_ocf. systemd: is-active 0 -> 0, else NOT_RUNNING; start/stop by LSB rules
    (systemctl's exit codes follow them). heartbeat R1: like LSB; ``status`` also reads
    `output` (see _r1_status).
    """
    if exit_code < 0:
        return OcfRc.ERR_GENERIC
    if inv.standard == "systemd":
        verb = inv.argv[1] if len(inv.argv) > 1 else ""
    else:
        verb = inv.argv[-1] if inv.argv else ""
    if inv.standard == "ocf":
        if 0 <= exit_code <= 9 or exit_code in (OcfRc.DEGRADED, OcfRc.DEGRADED_PROMOTED):
            return exit_code
        return OcfRc.ERR_GENERIC
    if inv.standard == "lsb":
        return lsb_rc_to_ocf(verb, exit_code)
    if inv.standard == "heartbeat":
        if verb == "status":
            return _r1_status(exit_code, output)
        return lsb_rc_to_ocf(verb, exit_code)
    if inv.standard == "systemd":
        if verb == "is-active":
            return OcfRc.SUCCESS if exit_code == 0 else OcfRc.NOT_RUNNING
        return lsb_rc_to_ocf(verb, exit_code)
    return OcfRc.ERR_GENERIC
