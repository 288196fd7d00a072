"""OCF meta-data: parse an agent's XML into typed objects, durations, parameter checks."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree


class MetadataError(Exception):
    """Meta-data that cannot be used; the message names the agent, the line and what is wrong."""


@dataclass(frozen=True)
class Parameter:
    """One ``<parameter>`` of an agent."""

    name: str
    required: bool
    unique: bool
    type: str  # the <content type=...>: string, integer, boolean, select, ...
    default: str | None
    shortdesc: str
    longdesc: str
    reloadable: bool = False
    deprecated: bool = False
    unique_group: str | None = None  # OCF 1.1 unique-group
    options: tuple[str, ...] = ()  # <option value=...> of a "select" parameter


@dataclass(frozen=True)
class ActionSpec:
    """One ``<action>`` of an agent with its advised timeout/interval in seconds."""

    name: str
    timeout: float | None
    interval: float | None
    depth: int | None
    role: str | None
    start_delay: float | None = None


@dataclass(frozen=True)
class AgentMetadata:
    """The parsed meta-data of one agent."""

    name: str
    version: str  # the agent's version (attribute), else the OCF version element
    shortdesc: str
    longdesc: str
    parameters: tuple[Parameter, ...]
    actions: tuple[ActionSpec, ...]
    ocf_version: str = ""  # the <version> element: the OCF API version the agent follows

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called `name`, if the agent has it."""
        for param in self.parameters:
            if param.name == name:
                return param
        return None

    def action(self, name: str, interval: float | None = None) -> ActionSpec | None:
        """The advertised action `name`; with an interval, the entry with that interval is
        preferred (agents list several monitors), else the first entry of that name."""
        matches = [a for a in self.actions if a.name == name]
        if interval is not None:
            for spec in matches:
                if (spec.interval or 0.0) == interval:
                    return spec
        return matches[0] if matches else None

    def advised_timeout(self, action: str, interval: float = 0) -> float | None:
        """The agent's advised timeout (seconds) for an action, None when it advises none."""
        spec = self.action(action, interval)
        return spec.timeout if spec is not None else None


# Pacemaker's crm_get_msec units (matched case-insensitively) -> seconds per unit.
_UNITS: dict[str, float] = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "ms": 0.001,
    "msec": 0.001,
    "us": 0.000001,
    "usec": 0.000001,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
}
_PLAIN_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t]*([A-Za-z]*)")
_ISO_RE = re.compile(
    r"P(?!$)(?:([0-9]+)Y)?(?:([0-9]+)M)?(?:([0-9]+)W)?(?:([0-9]+)D)?"
    r"(?:T(?!$)(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?"
)
# ISO 8601 years and months have no fixed length; Pacemaker's crm_time uses 365 and 30 days.
_ISO_SECONDS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)
_ALLOWED = 'a number with an optional unit (ms, us, s, m/min, h/hr; e.g. "20s", "100ms", "2min")'


def parse_duration(text: str) -> float:
    """Seconds in a Pacemaker duration: "20s", "20" (seconds), "100ms", "2min", "1m", "1h",
    or an ISO 8601 duration "PT1M30S". ValueError naming the text when it is none of these.

    Unlike crm_get_msec, a unit must be one of the unit words exactly (crm_get_msec accepts
    any word starting with one, e.g. "5mfoo") and a decimal fraction counts ("1.5s" is 1.5 s,
    where crm_get_msec truncates it to 1 s).
    """
    if not isinstance(text, str):
        raise ValueError(f"bad duration {text!r}: expected {_ALLOWED}")
    stripped = text.strip()
    iso = _ISO_RE.fullmatch(stripped)
    if iso:
        parts = zip(iso.groups(), _ISO_SECONDS, strict=True)
        total = sum(float(value) * unit for value, unit in parts if value)
    else:
        plain = _PLAIN_RE.fullmatch(stripped)
        unit = plain.group(2).lower() if plain else None
        if plain is None or unit not in _UNITS:
            raise ValueError(f"bad duration {text!r}: expected {_ALLOWED} or ISO 8601 like PT1M30S")
        total = float(plain.group(1)) * _UNITS[unit]
    if not math.isfinite(total):
        raise ValueError(f"bad duration {text!r}: too large")
    return total


def _text(element: etree._Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _desc(parent: etree._Element, tag: str) -> str:
    """The English (or else the first) <longdesc>/<shortdesc> child, whitespace collapsed."""
    found = [c for c in parent if c.tag == tag]
    for child in found:
        if child.get("lang", "en") == "en":
            return _text(child)
    return _text(found[0]) if found else ""


_TRUE = frozenset({"1", "true", "yes", "on", "y"})


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def _where(source: str, element: etree._Element) -> str:
    return f"{source}: line {element.sourceline}"


def _duration_attr(source: str, element: etree._Element, attr: str) -> float | None:
    value = element.get(attr)
    if value is None or value.strip() == "":
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise MetadataError(f"{_where(source, element)}: <action> {attr}: {exc}") from None


def _parse_parameter(source: str, element: etree._Element) -> Parameter:
    name = element.get("name")
    if not name:
        raise MetadataError(f"{_where(source, element)}: <parameter> without a name")
    content = next((c for c in element if c.tag == "content"), None)
    options: tuple[str, ...] = ()
    if content is not None:
        options = tuple(o.get("value", "") for o in content if o.tag == "option")
    return Parameter(
        name=name,
        required=_flag(element.get("required")),
        unique=_flag(element.get("unique")),
        type=(content.get("type") if content is not None else None) or "string",
        default=content.get("default") if content is not None else None,
        shortdesc=_desc(element, "shortdesc"),
        longdesc=_desc(element, "longdesc"),
        reloadable=_flag(element.get("reloadable")),
        deprecated=any(c.tag == "deprecated" for c in element) or _flag(element.get("deprecated")),
        unique_group=element.get("unique-group"),
        options=options,
    )


def _parse_action(source: str, element: etree._Element) -> ActionSpec:
    name = element.get("name")
    if not name:
        raise MetadataError(f"{_where(source, element)}: <action> without a name")
    depth_text = element.get("depth")
    depth: int | None = None
    if depth_text is not None and depth_text.strip() != "":
        try:
            depth = int(depth_text.strip())
        except ValueError:
            raise MetadataError(
                f"{_where(source, element)}: <action name={name!r}> depth {depth_text!r} "
                "is not a whole number"
            ) from None
    return ActionSpec(
        name=name,
        timeout=_duration_attr(source, element, "timeout"),
        interval=_duration_attr(source, element, "interval"),
        depth=depth,
        role=element.get("role") or None,
        start_delay=_duration_attr(source, element, "start-delay"),
    )


def parse_metadata(xml: bytes | str, source: str) -> AgentMetadata:
    """Parse an agent's meta-data XML; `source` names the agent in errors.

    Raises MetadataError (only) for output that is not XML (with the line lxml reports), that is
    not a <resource-agent>, or whose parameters/actions lack names or have bad durations.
    """
    if isinstance(xml, str):
        # lxml refuses str with an encoding declaration; the bytes carry their own encoding.
        data = xml.encode("utf-8", "surrogatepass")
        if data.lstrip().startswith(b"<?xml"):
            data = re.sub(rb"^(\s*<\?xml[^>]*?)\s+encoding=([\"'])[^\"']*\2", rb"\1", data)
    else:
        data = xml
    if not data.strip():
        raise MetadataError(f"{source}: empty meta-data (expected <resource-agent> XML)")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno is not None else "?"
        # lxml appends ", line L, column C" to its message; say the line once, up front.
        message = re.sub(r",? line \d+, column \d+$", "", exc.msg or str(exc)).strip()
        raise MetadataError(
            f"{source}: line {line}: meta-data is not valid XML: {message}"
        ) from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding declaration
        raise MetadataError(f"{source}: line 1: meta-data cannot be read: {exc}") from None
    if root.tag != "resource-agent":
        raise MetadataError(
            f"{_where(source, root)}: expected <resource-agent> as the root element, "
            f"got <{root.tag}>"
        )
    ocf_version = _text(next((c for c in root if c.tag == "version"), None))
    parameters: list[Parameter] = []
    for group in (c for c in root if c.tag == "parameters"):
        parameters.extend(_parse_parameter(source, p) for p in group if p.tag == "parameter")
    actions: list[ActionSpec] = []
    for group in (c for c in root if c.tag == "actions"):
        actions.extend(_parse_action(source, a) for a in group if a.tag == "action")
    return AgentMetadata(
        name=root.get("name") or "",
        version=root.get("version") or ocf_version,
        shortdesc=_desc(root, "shortdesc"),
        longdesc=_desc(root, "longdesc"),
        parameters=tuple(parameters),
        actions=tuple(actions),
        ocf_version=ocf_version,
    )


def _value_problem(param: Parameter, value: str) -> str | None:
    kind = param.type.lower()
    stripped = value.strip()
    if kind in ("integer", "int") and stripped and not re.fullmatch(r"[+-]?[0-9]+", stripped):
        return f"parameter {param.name}: {value!r} is not an integer"
    if (
        kind == "boolean"
        and stripped
        and stripped.lower() not in (_TRUE | {"0", "false", "no", "off", "n"})
    ):
        return f"parameter {param.name}: {value!r} is not a boolean (true/false, yes/no, 1/0)"
    if kind == "select" and param.options and value not in param.options:
        return f"parameter {param.name}: {value!r} is not one of {', '.join(param.options)}"
    return None


def check_parameters(meta: AgentMetadata, params: Mapping[str, str]) -> list[str]:
    """Problems with `params` for this agent: "missing required parameter NAME ...",
    "unknown parameter NAME" (warnings: agents ignore them) and values of the wrong type."""
    problems: list[str] = []
    known = {p.name: p for p in meta.parameters}
    for param in meta.parameters:
        if param.required and not params.get(param.name):
            what = f" ({param.shortdesc})" if param.shortdesc else ""
            problems.append(f"missing required parameter {param.name}{what} for {meta.name}")
    for name, value in params.items():
        param = known.get(name)
        if param is None:
            problems.append(f"unknown parameter {name} for {meta.name}")
            continue
        problem = _value_problem(param, value)
        if problem:
            problems.append(problem)
    return problems
