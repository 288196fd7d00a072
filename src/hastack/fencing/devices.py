"""Fence devices and the fencing topology, as Pacemaker and heartbeat configure them.

Pacemaker: every ``<primitive class="stonith" type="AGENT">`` is a device; its instance
attributes are the agent's parameters, except the ``pcmk_*`` ones, which tell the fencer how
to use it (which nodes it can fence and under which port name, which of its actions stands for
a reboot, timeouts, retries, delays). ``<fencing-topology>`` groups devices into levels per
node: the levels are tried in index order, and every device of a level must succeed.

heartbeat R1: ``stonith TYPE FILE`` in ha.cf is one cluster-glue device whose parameters are in
FILE, usable from every node; ``stonith_host FROM TYPE PARAMS...`` one usable from FROM (``*``:
any node). Both fence every node the plugin lists.

Everything here is pure: the configuration in, devices (or the problems found, each naming the
device and the parameter) out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hastack.crm.cib.model import Cib, FencingLevel, Primitive, flatten, parse_interval_ms
from hastack.fencing.runners import HACF_CONFIG_FILE, HACF_PARAMETERS
from hastack.fencing.runners import device_kind as runner_kind

HOST_CHECKS = ("static-list", "dynamic-list", "status", "none")
DEVICE_ACTIONS = ("reboot", "off", "on", "list", "monitor", "status")
DEFAULT_TIMEOUT = 60.0  # stonith-timeout's default, as Pacemaker
DEFAULT_RETRIES = 2  # pcmk_reboot_retries' default, as Pacemaker
# the pcmk_* parameters Pacemaker 2.1 knows (others are reported by name)
_PCMK_FIXED = {
    "pcmk_host_argument",
    "pcmk_host_map",
    "pcmk_host_list",
    "pcmk_host_check",
    "pcmk_delay_max",
    "pcmk_delay_base",
    "pcmk_action_limit",
}
_PCMK_PER_ACTION = {
    f"pcmk_{a}_{what}" for a in DEVICE_ACTIONS for what in ("action", "timeout", "retries")
}


class DeviceConfigError(ValueError):
    """A fence device or topology level that cannot be used; the message names it."""


@dataclass(frozen=True)
class FenceDevice:
    """One fence device, ready for the fencer."""

    id: str
    agent: str  # the primitive's type: fence_ipmilan, external/ssh, hastack/manual, ...
    params: Mapping[str, str]  # the agent's own parameters
    host_list: tuple[str, ...] | None = None  # pcmk_host_list
    host_map: Mapping[str, str] = field(default_factory=dict)  # node -> port
    host_check: str = "none"
    host_argument: str | None = "port"  # None: the agent gets no port at all
    action_map: Mapping[str, str] = field(default_factory=dict)  # requested -> device action
    timeouts: Mapping[str, float] = field(default_factory=dict)  # action -> seconds
    retries: Mapping[str, int] = field(default_factory=dict)
    delay_base: Mapping[str, float] = field(default_factory=dict)  # node ("" = any) -> s
    delay_max: float = 0.0
    priority: int = 0
    runs_on: tuple[str, ...] | None = None  # nodes that may run it (None: any but the target)
    source: str = ""  # where it was configured, for messages

    @property
    def kind(self) -> str:
        """fence-agent, glue, or hastack's own: external, ssh, ipmi, manual, watchdog."""
        return device_kind(self.agent)

    def static_targets(self) -> tuple[str, ...] | None:
        """The nodes pcmk_host_list/pcmk_host_map name (None: the device must be asked)."""
        if self.host_check == "static-list":
            names = list(self.host_list or ())
            names += [n for n in self.host_map if n not in names]
            return tuple(names)
        return None

    def port_for(self, target: str) -> str:
        """The name the device knows `target` by (pcmk_host_map, else the node name)."""
        return self.host_map.get(target, target)

    def device_action(self, action: str) -> str:
        """The device's action for a requested one (pcmk_reboot_action and friends)."""
        return self.action_map.get(action, action)

    def timeout(self, action: str, default: float) -> float:
        return self.timeouts.get(action, default)

    def retries_for(self, action: str) -> int:
        return self.retries.get(action, DEFAULT_RETRIES)

    def base_delay(self, target: str) -> float:
        return self.delay_base.get(target, self.delay_base.get("", 0.0))

    def may_run_on(self, node: str, target: str) -> bool:
        """A device never runs on the node it fences (that node is the one in trouble), and
        only where it is allowed (heartbeat's stonith_host FROM)."""
        if node == target:
            return False
        return self.runs_on is None or node in self.runs_on


def device_kind(agent: str) -> str:
    """fence-agent, glue, or hastack's own kind; DeviceConfigError for a name none can run."""
    try:
        return runner_kind(agent)
    except ValueError as exc:
        raise DeviceConfigError(str(exc)) from None


@dataclass(frozen=True)
class Level:
    """One fencing-topology level: all its devices are needed, in order."""

    index: int
    devices: tuple[str, ...]
    id: str = ""


@dataclass(frozen=True)
class Topology:
    """The fencing-topology: levels per node (by name, pattern or attribute)."""

    levels: tuple[tuple[FencingLevel, Level], ...] = ()

    def levels_for(self, target: str, attributes: Mapping[str, str] | None = None) -> list[Level]:
        """The target's levels in index order ([]: no topology for it)."""
        found: dict[int, Level] = {}
        for raw, level in self.levels:
            if _level_matches(raw, target, attributes or {}) and level.index not in found:
                found[level.index] = level
        return [found[i] for i in sorted(found)]


def _level_matches(raw: FencingLevel, target: str, attributes: Mapping[str, str]) -> bool:
    if raw.target is not None:
        return raw.target == target
    if raw.target_pattern is not None:
        try:
            return re.search(raw.target_pattern, target) is not None
        except re.error:
            return False
    if raw.target_attribute is not None:
        return attributes.get(raw.target_attribute) == raw.target_value
    return False


@dataclass(frozen=True)
class FencingConfig:
    """Every usable device, the topology, and what could not be used (with why)."""

    devices: tuple[FenceDevice, ...] = ()
    topology: Topology = field(default_factory=Topology)
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def device(self, device_id: str) -> FenceDevice | None:
        return next((d for d in self.devices if d.id == device_id), None)


def _seconds(name: str, text: str) -> float:
    try:
        return parse_interval_ms(text) / 1000
    except ValueError:
        raise DeviceConfigError(
            f"{name}={text!r} is not a duration (a number with an optional unit ms, s, min, h)"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,;]+", text.strip()) if w)


def parse_host_map(text: str, what: str = "pcmk_host_map") -> dict[str, str]:
    """``node1:port1;node2:port2`` (``=`` also separates; entries by ``;`` or whitespace)."""
    mapping: dict[str, str] = {}
    for entry in re.split(r"[;\s]+", text.strip()):
        if not entry:
            continue
        m = re.fullmatch(r"([^:=]+)[:=](.+)", entry)
        if m is None:
            raise DeviceConfigError(
                f"{what}: {entry!r} is not NODE:PORT (entries like node1:1;node2:2)"
            )
        mapping[m.group(1)] = m.group(2)
    return mapping


def parse_delay_base(text: str) -> dict[str, float]:
    """pcmk_delay_base: one duration, or a per-node map ``node1:0s;node2:5s``."""
    if ":" in text or "=" in text:
        return {
            n: _seconds("pcmk_delay_base", v)
            for n, v in parse_host_map(text, "pcmk_delay_base").items()
        }
    return {"": _seconds("pcmk_delay_base", text)}


def device_from_primitive(
    primitive: Primitive,
    supports_list: bool | None = None,
    default_timeout: float = DEFAULT_TIMEOUT,
) -> tuple[FenceDevice, list[str]]:
    """One ``class="stonith"`` primitive (templates already applied) as a device, and the
    warnings about it. Raises DeviceConfigError naming the primitive and the parameter."""
    if primitive.type is None or not primitive.type.strip():
        raise DeviceConfigError(f"stonith resource {primitive.id}: no type (the fence agent)")
    where = f"stonith resource {primitive.id}"
    try:
        kind = device_kind(primitive.type)
    except DeviceConfigError as exc:
        raise DeviceConfigError(f"{where}: {exc}") from None
    attrs = flatten(primitive.instance_attributes)
    meta = flatten(primitive.meta)
    warnings: list[str] = []
    params = {k: v for k, v in attrs.items() if not k.startswith("pcmk_")}
    pcmk = {k: v for k, v in attrs.items() if k.startswith("pcmk_")}
    for name in pcmk:
        if name not in _PCMK_FIXED and name not in _PCMK_PER_ACTION:
            warnings.append(f"{where}: unknown parameter {name} is ignored")
    try:
        host_list = _names(pcmk["pcmk_host_list"]) if "pcmk_host_list" in pcmk else None
        host_map = parse_host_map(pcmk["pcmk_host_map"]) if "pcmk_host_map" in pcmk else {}
        check = pcmk.get("pcmk_host_check")
        if check is None:
            # Pacemaker's default: the static list when one is given, else ask the device
            if host_list or host_map:
                check = "static-list"
            elif supports_list is False or kind in ("ssh", "ipmi", "manual", "watchdog"):
                check = "none"
                if kind in ("ipmi", "fence-agent"):
                    warnings.append(
                        f"{where}: no pcmk_host_list or pcmk_host_map, so it is taken to "
                        "fence ANY node; name the node(s) it powers off"
                    )
            else:
                check = "dynamic-list"
        if check not in HOST_CHECKS:
            raise DeviceConfigError(f"pcmk_host_check={check!r}; allowed: {', '.join(HOST_CHECKS)}")
        if check == "static-list" and not host_list and not host_map:
            raise DeviceConfigError(
                "pcmk_host_check=static-list needs pcmk_host_list or pcmk_host_map"
            )
        argument: str | None = pcmk.get("pcmk_host_argument", "port")
        if argument == "none":
            argument = None
        actions: dict[str, str] = {}
        timeouts: dict[str, float] = {}
        retries: dict[str, int] = {}
        for action in DEVICE_ACTIONS:
            mapped = pcmk.get(f"pcmk_{action}_action")
            if mapped is not None:
                if not re.fullmatch(r"[A-Za-z][\w-]*", mapped):
                    raise DeviceConfigError(
                        f"pcmk_{action}_action={mapped!r} is not an action name"
                    )
                actions[action] = mapped
            timeout = pcmk.get(f"pcmk_{action}_timeout")
            timeouts[action] = (
                _seconds(f"pcmk_{action}_timeout", timeout)
                if timeout is not None
                else default_timeout
            )
            count = pcmk.get(f"pcmk_{action}_retries")
            if count is not None:
                if not count.strip().isdigit():
                    raise DeviceConfigError(
                        f"pcmk_{action}_retries={count!r} is not a whole number of retries"
                    )
                retries[action] = int(count)
        delay_base = parse_delay_base(pcmk["pcmk_delay_base"]) if "pcmk_delay_base" in pcmk else {}
        delay_max = (
            _seconds("pcmk_delay_max", pcmk["pcmk_delay_max"]) if "pcmk_delay_max" in pcmk else 0.0
        )
        priority_text = meta.get("priority", "0")
        try:
            priority = int(priority_text)
        except ValueError:
            raise DeviceConfigError(f"meta priority={priority_text!r} is not an integer") from None
    except DeviceConfigError as exc:
        raise DeviceConfigError(f"{where}: {exc}") from None
    if kind in ("ssh", "ipmi", "external"):
        problem = _own_device_problem(kind, primitive.type, params)
        if problem:
            raise DeviceConfigError(f"{where}: {problem}")
    device = FenceDevice(
        id=primitive.id,
        agent=primitive.type,
        params=params,
        host_list=host_list,
        host_map=host_map,
        host_check=check,
        host_argument=argument,
        action_map=actions,
        timeouts=timeouts,
        retries=retries,
        delay_base=delay_base,
        delay_max=delay_max,
        priority=priority,
        source=where,
    )
    return device, warnings


def _own_device_problem(kind: str, agent: str, params: Mapping[str, str]) -> str:
    """A bad parameter of hastack's own devices, found when the configuration is read (not
    at fence time): the runners' own checks, on a monitor call."""
    from hastack.fencing.runners import DeviceCall, check_call
    from hastack.fencing.ssh_ipmi import ipmi_config, ssh_config

    call = DeviceCall("check", agent, "monitor", None, None, params, 10.0)
    try:
        if kind == "ssh":
            ssh_config(call)
        elif kind == "ipmi":
            ipmi_config(call)
        else:
            check_call(call)
    except ValueError as exc:
        return str(exc)
    return ""


def _disabled(primitive: Primitive) -> bool:
    role = flatten(primitive.meta).get("target-role", "Started").lower()
    return role == "stopped"


def fencing_from_cib(cib: Cib) -> FencingConfig:
    """Every stonith primitive of the CIB as a device, and the fencing-topology. A device or
    level that cannot be used is left out and named in ``problems``; nothing raises."""
    options = cib.cluster_options()
    default_timeout = DEFAULT_TIMEOUT
    problems: list[str] = []
    warnings: list[str] = []
    if "stonith-timeout" in options:
        try:
            default_timeout = _seconds("stonith-timeout", options["stonith-timeout"])
        except DeviceConfigError as exc:
            problems.append(f"cluster option {exc}; using {DEFAULT_TIMEOUT:g} s")
    devices: list[FenceDevice] = []
    for raw in cib.all_primitives():
        primitive = cib.expand_template(raw)
        if (primitive.cls or "").lower() != "stonith":
            continue
        if _disabled(primitive):
            warnings.append(f"stonith resource {primitive.id} is disabled (target-role=Stopped)")
            continue
        try:
            device, notes = device_from_primitive(primitive, default_timeout=default_timeout)
        except DeviceConfigError as exc:
            problems.append(str(exc))
            continue
        devices.append(device)
        warnings += notes
    topology, level_problems = topology_from_cib(
        cib.fencing_topology or (), {d.id for d in devices}
    )
    return FencingConfig(
        tuple(devices), topology, tuple(problems + level_problems), tuple(warnings)
    )


def topology_from_cib(
    levels: Iterable[FencingLevel], device_ids: set[str]
) -> tuple[Topology, list[str]]:
    kept: list[tuple[FencingLevel, Level]] = []
    problems: list[str] = []
    for raw in levels:
        where = f"fencing-level {raw.id or '?'}"
        try:
            index = int(raw.index)
        except ValueError:
            problems.append(f"{where}: index {raw.index!r} is not a whole number 1-9")
            continue
        if not 1 <= index <= 9:
            problems.append(f"{where}: index {index} is outside 1-9")
            continue
        names = tuple(d for d in raw.devices.split(",") if d.strip())
        missing = [d for d in names if d not in device_ids]
        if not names:
            problems.append(f"{where}: no devices")
            continue
        if missing:
            problems.append(
                f"{where}: device(s) {', '.join(missing)} not configured (or disabled): "
                "the level cannot succeed and is left out"
            )
            continue
        if raw.target is None and raw.target_pattern is None and raw.target_attribute is None:
            problems.append(f"{where}: names no target, target-pattern or target-attribute")
            continue
        if raw.target_pattern is not None:
            try:
                re.compile(raw.target_pattern)
            except re.error as exc:
                problems.append(f"{where}: target-pattern {raw.target_pattern!r}: {exc}")
                continue
        kept.append((raw, Level(index, names, raw.id)))
    return Topology(tuple(kept)), problems


def fencing_from_hacf(
    stonith: tuple[str, str] | None,
    stonith_hosts: Sequence[object],
    default_timeout: float = DEFAULT_TIMEOUT,
) -> FencingConfig:
    """heartbeat R1's devices: ``stonith TYPE FILE`` (any node runs it) and every
    ``stonith_host FROM TYPE PARAMS...`` (FROM runs it; ``*``: any node). The plugin lists
    the nodes it can fence (dynamic-list), as heartbeat asked it."""
    devices: list[FenceDevice] = []
    timeouts = dict.fromkeys(DEVICE_ACTIONS, default_timeout)
    if stonith is not None:
        device_type, config_file = stonith
        devices.append(
            FenceDevice(
                id="ha.cf-stonith",
                agent=device_type,
                params={HACF_CONFIG_FILE: config_file},
                host_check="dynamic-list",
                timeouts=timeouts,
                action_map={},
                source="ha.cf stonith",
            )
        )
    for n, entry in enumerate(stonith_hosts, start=1):
        from_host: str = entry.from_host  # type: ignore[attr-defined]
        device_type = entry.device_type  # type: ignore[attr-defined]
        words: tuple[str, ...] = entry.params  # type: ignore[attr-defined]
        devices.append(
            FenceDevice(
                id=f"ha.cf-stonith_host-{n}",
                agent=device_type,
                params={HACF_PARAMETERS: " ".join(words)},
                host_check="dynamic-list",
                timeouts=timeouts,
                runs_on=None if from_host == "*" else (from_host,),
                source=f"ha.cf stonith_host {from_host} {device_type}",
            )
        )
    return FencingConfig(tuple(devices))


def merge(*configs: FencingConfig) -> FencingConfig:
    """The devices of several sources (the CIB's first: an id seen twice keeps the first)."""
    devices: list[FenceDevice] = []
    seen: set[str] = set()
    for config in configs:
        for device in config.devices:
            if device.id not in seen:
                seen.add(device.id)
                devices.append(device)
    levels = tuple(level for config in configs for level in config.topology.levels)
    return FencingConfig(
        tuple(devices),
        Topology(levels),
        tuple(p for c in configs for p in c.problems),
        tuple(w for c in configs for w in c.warnings),
    )
