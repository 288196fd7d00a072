"""What a fence device agent says about itself: parameters and actions.

Sans-IO: this module only parses text that :mod:`hastack.fencing.runners` got from a process.
Three sources give the same :class:`DeviceMetadata`:

* a fence-agent's ``-o metadata`` (``action=metadata`` on stdin) XML, a ``<resource-agent>``
  with ``<parameters>`` and ``<actions>`` (fence-agents' own format, close to OCF's);
* a cluster-glue plugin's ``stonith -t TYPE -m``, which prints the same shape of XML (with a
  DOCTYPE and the OCF-style resource actions start/stop/monitor, not fence actions); when that
  fails, ``stonith -t TYPE -n``, which prints only the parameter names on one line;
* hastack's own devices (``hastack/external``, ``manual``, ``watchdog``), described here.

Real agents are the ground truth, so the parser is tolerant where they vary (unknown
attributes, missing descriptions, a duplicate parameter) and strict only where nothing usable
is left: text that is not XML, a different root element, a parameter without a usable name.
Every such problem is a :class:`MetadataError` naming the agent and, where it helps, the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lxml import etree

MAX_METADATA_BYTES = 1024 * 1024  # larger "metadata" is not metadata

# Fence actions the runners understand; glue plugins are driven through these by `stonith`.
FENCE_ACTIONS: tuple[str, ...] = ("off", "on", "reboot", "status", "monitor", "list", "metadata")

# A parameter name: what can be written as `name=value` on a fence agent's stdin and exported
# as an environment variable for glue and external devices (no '=', no whitespace).
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

MetadataSource = Literal["fence-agent", "glue", "hastack"]


class MetadataError(Exception):
    """Metadata that cannot be used; the message names the agent and what is wrong."""


@dataclass(frozen=True)
class FenceParameter:
    """One parameter a device agent takes."""

    name: str
    required: bool
    type: str  # <content type=...>: string, boolean, integer, second, select, ...
    default: str | None
    shortdesc: str
    longdesc: str = ""
    unique: bool = False
    deprecated: bool = False
    obsoletes: str | None = None  # the older name this one replaces (fence-agents)
    options: tuple[str, ...] = ()  # <option value=...> of a select parameter


@dataclass(frozen=True)
class DeviceMetadata:
    """The parsed description of one device agent."""

    agent: str
    source: MetadataSource
    shortdesc: str
    longdesc: str
    parameters: tuple[FenceParameter, ...]
    actions: tuple[str, ...]  # as the agent lists them (fence-agents: on, off, reboot, ...)

    def parameter(self, name: str) -> FenceParameter | None:
        """The parameter called `name`, if the agent has it."""
        for param in self.parameters:
            if param.name == name:
                return param
        return None

    def port_parameter(self) -> Literal["plug", "port"] | None:
        """How the agent wants to be told the plug: ``plug`` (current fence-agents), ``port``
        (older agents), or None when it has no port at all (one device per node, such as
        fence_dummy with its status file)."""
        if self.parameter("plug") is not None:
            return "plug"
        if self.parameter("port") is not None:
            return "port"
        return None

    def supports(self, action: str) -> bool:
        """Whether the agent lists `action` (glue metadata lists the fence actions that the
        stonith command can carry; a plugin may still refuse on/off when run)."""
        return action in self.actions


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _clean(text: str) -> str:
    """Descriptions are indented and wrapped in the XML; one paragraph of single spaces."""
    return " ".join(text.split())


def _desc(parent: etree._Element, tag: str) -> str:
    """The English (or first) <shortdesc>/<longdesc> child's text; the root's shortdesc may
    also be an attribute (fence-agents put it there)."""
    chosen = None
    for child in parent.iterchildren(tag):
        if chosen is None or child.get("lang", "en") == "en":
            chosen = child
            if child.get("lang", "en") == "en":
                break
    if chosen is not None:
        return _clean("".join(chosen.itertext()))
    return _clean(parent.get(tag) or "")


def _where(agent: str, element: etree._Element) -> str:
    line = element.sourceline
    return f"{agent} metadata, line {line}" if line else f"{agent} metadata"


def _parse_parameter(agent: str, element: etree._Element) -> FenceParameter:
    name = (element.get("name") or "").strip()
    if not name:
        raise MetadataError(f"{_where(agent, element)}: a <parameter> without a name")
    if not PARAM_NAME.fullmatch(name):
        raise MetadataError(
            f"{_where(agent, element)}: parameter name {name!r} cannot be passed to the agent "
            "(allowed: letters, digits, '_', '.', '-', starting with a letter or '_')"
        )
    content = element.find("content")
    ptype, default, options = "string", None, ()
    if content is not None:
        ptype = (content.get("type") or "string").strip() or "string"
        default = content.get("default")
        options = tuple(
            value for opt in content.iterchildren("option") if (value := opt.get("value"))
        )
    return FenceParameter(
        name=name,
        required=_flag(element.get("required")),
        type=ptype,
        default=default,
        shortdesc=_desc(element, "shortdesc"),
        longdesc=_desc(element, "longdesc"),
        unique=_flag(element.get("unique")),
        deprecated=_flag(element.get("deprecated")),
        obsoletes=(element.get("obsoletes") or None),
        options=options,
    )


def _parse_xml(xml: bytes | str, agent: str) -> etree._Element:
    data = xml.encode("utf-8", errors="replace") if isinstance(xml, str) else bytes(xml)
    if not data.strip():
        raise MetadataError(f"{agent} metadata: empty (the agent printed nothing)")
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError(
            f"{agent} metadata: {len(data)} bytes, more than the {MAX_METADATA_BYTES} allowed"
        )
    if b"<!ENTITY" in data:  # no agent needs them; expanding them is how XML bombs work
        raise MetadataError(f"{agent} metadata: defines XML entities, which is not allowed")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = f", line {exc.lineno}" if exc.lineno else ""
        raise MetadataError(f"{agent} metadata{line}: not well-formed XML: {exc.msg}") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding declaration
        raise MetadataError(f"{agent} metadata: cannot be read as XML: {exc}") from None
    if root is None:
        raise MetadataError(f"{agent} metadata: no XML document")
    if not isinstance(root.tag, str) or root.tag != "resource-agent":
        raise MetadataError(
            f"{agent} metadata: the root element is <{root.tag}>, expected <resource-agent>"
        )
    return root


def parse_agent_metadata(
    xml: bytes | str, agent: str, source: MetadataSource = "fence-agent"
) -> DeviceMetadata:
    """Parse a fence-agent's ``metadata`` XML, or a glue plugin's ``stonith -m`` XML.

    For glue plugins the actions are the fence actions the stonith command can carry; the
    XML lists only OCF-style resource actions, which say nothing about what a plugin fences.
    """
    root = _parse_xml(xml, agent)
    params: list[FenceParameter] = []
    seen: set[str] = set()
    for container in root.iterchildren("parameters"):
        for element in container.iterchildren("parameter"):
            param = _parse_parameter(agent, element)
            if param.name not in seen:  # a repeated name: the first one counts
                seen.add(param.name)
                params.append(param)
    actions: list[str] = []
    if source == "glue":
        actions = list(FENCE_ACTIONS)
    else:
        for container in root.iterchildren("actions"):
            for element in container.iterchildren("action"):
                name = (element.get("name") or "").strip()
                if not name:
                    raise MetadataError(f"{_where(agent, element)}: an <action> without a name")
                if name not in actions:
                    actions.append(name)
    return DeviceMetadata(
        agent=agent,
        source=source,
        shortdesc=_desc(root, "shortdesc"),
        longdesc=_desc(root, "longdesc"),
        parameters=tuple(params),
        actions=tuple(actions),
    )


def parse_glue_confignames(text: str, agent: str) -> tuple[str, ...]:
    """The names ``stonith -t TYPE -n`` prints (one line, separated by spaces; a plugin
    without parameters prints an empty line)."""
    names: list[str] = []
    for word in text.split():
        if not PARAM_NAME.fullmatch(word):
            raise MetadataError(
                f"{agent}: stonith -n printed {word[:80]!r}, which is not a parameter name"
            )
        if word not in names:
            names.append(word)
    return tuple(names)


def glue_metadata_from_names(agent: str, names: tuple[str, ...]) -> DeviceMetadata:
    """Metadata for a glue plugin known only by its parameter names (``stonith -n``): the
    stonith command wants every listed parameter, so each one is required."""
    return DeviceMetadata(
        agent=agent,
        source="glue",
        shortdesc=f"cluster-glue STONITH plugin {agent}",
        longdesc="",
        parameters=tuple(FenceParameter(n, True, "string", None, "") for n in names),
        actions=FENCE_ACTIONS,
    )


_BUILTIN: dict[str, DeviceMetadata] = {
    "external": DeviceMetadata(
        agent="hastack/external",
        source="hastack",
        shortdesc="Any executable run as SCRIPT ACTION [NODE]",
        longdesc=(
            "hastack runs the executable named by 'script' with the action (off, on, reboot, "
            "status, monitor, list, metadata) and, for a node's action, the node's name on the "
            "device (the pcmk_host_map port, else the node name) as arguments. Every other "
            "parameter is exported in its environment as it is named, with "
            "HASTACK_FENCE_ACTION, HASTACK_FENCE_TARGET (the node's cluster name) and "
            "HASTACK_FENCE_PORT. Exit 0 is success; status exits 0 for on and 2 for off; list "
            "prints one name a line."
        ),
        parameters=(
            FenceParameter(
                "script", True, "string", None, "Absolute path of the executable to run"
            ),
        ),
        actions=FENCE_ACTIONS,
    ),
    "manual": DeviceMetadata(
        agent="hastack/manual",
        source="hastack",
        shortdesc="An operator powers the node off and confirms it",
        longdesc=(
            "No process runs: the fence waits until an operator confirms with "
            "'hastack fence confirm NODE' that the node is off."
        ),
        parameters=(),
        actions=("off", "reboot", "monitor"),
    ),
    "watchdog": DeviceMetadata(
        agent="hastack/watchdog",
        source="hastack",
        shortdesc="Self-fencing: the node's watchdog resets it",
        longdesc=(
            "No process runs: the node counts as fenced once stonith-watchdog-timeout has "
            "passed since it lost quorum, which is safe only because its watchdog resets it."
        ),
        parameters=(),
        actions=("off", "reboot", "monitor"),
    ),
}


def builtin_metadata(kind: str) -> DeviceMetadata:
    """The metadata of hastack's own process-less or script device `kind`."""
    try:
        return _BUILTIN[kind]
    except KeyError:
        raise MetadataError(
            f"hastack/{kind}: no built-in metadata (built in: "
            f"{', '.join('hastack/' + k for k in _BUILTIN)})"
        ) from None
