"""Validate a cib.xml as `crm_verify -x` does: Pacemaker's RelaxNG schema, then semantic checks.

`validate(xml, source)` returns every problem found, errors and warnings, each naming the file,
the line, the element (and its id) and what is wrong. The CIB is valid when no problem is an
error. The schema is the one named by the `validate-with` attribute of `<cib>`, read from Debian's
`pacemaker-schemas` files (`/usr/share/pacemaker/pacemaker-3.7.rng` ...); when no schema file is
installed, one warning says so and only the semantic checks run.

The semantic checks are the ones crm_verify (Pacemaker 2.1.5) reports as errors that the schema
cannot express, with the same verdict as crm_verify (checked on Pacemaker's 799 scheduler test
CIBs, on written broken CIBs and on generated ones, in tests/compat/test_cib_verify.py):

- errors: ids used twice in the configuration (node ids excepted: a remote node is named as its
  resource); two recurring operations with the same name and interval (roles do not make them
  distinct); constraints naming a resource that does not exist, or the child of a clone (unless
  the status section knows an instance by that name); a clone or group inside a clone or group;
  `target-role` Promoted/Unpromoted outside a promotable clone; an unknown `on-fail`; an invalid
  order `kind` or colocation `influence`; two templates or tags colocated; fencing enabled
  without a fencing device (and without sbd's `have-watchdog`); a group, clone or bundle whose
  action is ordered after itself (Pacemaker 2.1.5 aborts on it);
- errors only when Pacemaker would create the action (a node online; for a stop, the resource
  active), warnings otherwise, as crm_verify only sees them then: `on-fail=stop` on a stop,
  `on-fail=fence` with fencing disabled, `on-fail=demote` outside promote/Promoted monitors;
- warnings: intervals, timeouts and start-delays that do not parse (crm_verify accepts them),
  a primitive ordered after itself, `validate-with="none"`, no `validate-with`.

Not checked (crm_verify reports them from scheduling, not from the configuration): a resource
found active on more nodes than allowed. The checks work on the XML tree, so they also cover
what the model refuses to read.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lxml import etree

from hastack.crm.cib.xml import decompress

DEFAULT_SCHEMA_DIR = Path("/usr/share/pacemaker")

Severity = Literal["error", "warning"]

_SCHEMA_NAME_RE = re.compile(r"pacemaker-(\d+)\.(\d+)|pacemaker-next")
_RESOURCE_TAGS = ("primitive", "group", "clone", "master", "bundle")
_TRUE = frozenset({"true", "on", "yes", "y", "1"})
_FALSE = frozenset({"false", "off", "no", "n", "0"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or doubtful) in a CIB."""

    source: str
    line: int | None
    element: str | None
    element_id: str | None
    message: str
    severity: Severity = "error"

    def where(self) -> str:
        place = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.element is None:
            return place
        what = (
            f"<{self.element}>"
            if self.element_id is None
            else f'<{self.element} id="{self.element_id}">'
        )
        return f"{place}: {what}"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.where()}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "source": self.source,
            "line": self.line,
            "element": self.element,
            "id": self.element_id,
            "message": self.message,
        }


def is_valid(problems: Iterable[Problem]) -> bool:
    """crm_verify's verdict: valid unless some problem is an error (warnings allowed)."""
    return not any(p.severity == "error" for p in problems)


class _Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(
        self, element: etree._Element | None, message: str, severity: Severity = "error"
    ) -> None:
        if element is None:
            self.problems.append(Problem(self.source, None, None, None, message, severity))
            return
        tag = element.tag if isinstance(element.tag, str) else None
        line = element.sourceline if element.sourceline else None
        self.problems.append(Problem(self.source, line, tag, element.get("id"), message, severity))


def validate(
    xml: bytes,
    source: str,
    schema_dir: Path = DEFAULT_SCHEMA_DIR,
    *,
    devices_outside_cib: bool = False,
) -> list[Problem]:
    """Every problem of the CIB document `xml` (read from `source`, used in messages).
    `devices_outside_cib`: fence devices are configured elsewhere (ha.cf `stonith`/
    `stonith_host`), so fencing enabled without a stonith resource is not an error."""
    out = _Collector(source)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)
    try:
        xml = decompress(xml)  # a saved scheduler input (pe-input-N.bz2) is checked as its CIB
    except ValueError as exc:
        out.problems.append(Problem(source, None, None, None, str(exc)))
        return out.problems
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        message = _syntax_message(exc)
        out.problems.append(Problem(source, line, None, None, f"not well-formed XML: {message}"))
        return out.problems
    if root.tag != "cib":
        out.add(root, f"the root element is <{root.tag}>; a CIB's root element is <cib>")
        return out.problems
    _check_schema(root, schema_dir, out)
    _check_semantics(root, out, devices_outside_cib)
    return out.problems


def validate_file(path: Path, schema_dir: Path = DEFAULT_SCHEMA_DIR) -> list[Problem]:
    """`validate` for a file; a file that cannot be read is one problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Problem(str(path), None, None, None, f"cannot read: {exc.strerror or exc}")]
    return validate(data, str(path), schema_dir)


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    text = str(exc.msg if getattr(exc, "msg", None) else exc)
    return re.sub(r", line \d+, column \d+$", "", text).strip()


# --- the schema ----------------------------------------------------------------------------


def known_schemas(schema_dir: Path) -> list[str]:
    """The `validate-with` names whose schema file is installed, oldest first."""

    def key(name: str) -> tuple[int, int]:
        match = re.fullmatch(r"pacemaker-(\d+)\.(\d+)", name)
        return (int(match[1]), int(match[2])) if match else (10**6, 0)

    names = [p.stem for p in schema_dir.glob("pacemaker-*.rng")]
    return sorted((n for n in names if _SCHEMA_NAME_RE.fullmatch(n)), key=key)


@functools.lru_cache(maxsize=16)
def _load_schema(path: str, mtime: float) -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(path))


def _check_schema(root: etree._Element, schema_dir: Path, out: _Collector) -> None:
    name = root.get("validate-with")
    known = known_schemas(schema_dir)
    if name == "none":
        out.add(
            root,
            'validate-with="none": schema validation is disabled (Pacemaker warns too; set '
            "it to a pacemaker-3.x schema)",
            "warning",
        )
        return
    if not known:
        out.add(
            None,
            f"no Pacemaker schema files in {schema_dir} (Debian's pacemaker-schemas package); "
            "the schema was not checked, only hastack's semantic checks ran",
            "warning",
        )
        return
    if name is None:
        name = known[-2] if known[-1] == "pacemaker-next" and len(known) > 1 else known[-1]
        out.add(root, f"<cib> has no validate-with attribute; checked against {name}", "warning")
    elif not _SCHEMA_NAME_RE.fullmatch(name) or name not in known:
        out.add(
            root,
            f"validate-with={name!r} is not a known schema; use one of "
            f"{known[0]} ... {known[-1]} (installed in {schema_dir}) or none",
        )
        return
    path = schema_dir / f"{name}.rng"
    try:
        schema = _load_schema(str(path), path.stat().st_mtime)
    except (OSError, etree.LxmlError) as exc:
        out.add(
            None, f"cannot load the schema {path}: {exc}; the schema was not checked", "warning"
        )
        return
    if schema.validate(root.getroottree()):
        return
    seen: set[tuple[int | None, str]] = set()
    reported: list[etree._Element] = []
    for entry in schema.error_log:
        element, message = _locate(root, entry)
        key = (element.sourceline if element is not None else None, message)
        if key in seen:
            continue
        seen.add(key)
        # libxml2 repeats an error up the tree ("the content of <primitive> is wrong", then
        # "<primitive> is not allowed inside <resources>"): keep only the first, most precise.
        generic = element is not None and _GENERIC_RE.match(entry.message.strip())
        if generic and any(e is element or element in e.iterancestors() for e in reported):
            continue
        if element is not None:
            reported.append(element)
        out.add(element, f"{name}: {message}")


_GENERIC_RE = re.compile(
    r"Element \S+ has extra content|Element \S+ failed to validate content|"
    r"Invalid sequence in interleave|Element \S+ failed to validate attributes"
)


_IDREF_RE = re.compile(r'IDREF attribute (\S+) references an unknown ID "([^"]*)"')
_READABLE = (
    (
        re.compile(r"^Element (\S+) has extra content: (\S+)$"),
        r"<\2> is not allowed here inside <\1> (or one of its attributes or children is wrong)",
    ),
    (
        re.compile(r"^Element (\S+) failed to validate attributes$"),
        r"an attribute of <\1> is missing, unknown or has a bad value",
    ),
    (re.compile(r"^Element (\S+) failed to validate content$"), r"the content of <\1> is wrong"),
    (
        re.compile(r"^Invalid attribute (\S+) for element (\S+)$"),
        r"<\2> does not take the attribute \1",
    ),
    (re.compile(r"^Expecting an element (\S+), got nothing$"), r"a <\1> child is missing"),
    (re.compile(r"^Expecting element (\S+), got (\S+)$"), r"expected <\1>, found <\2>"),
    (re.compile(r"^Did not expect element (\S+) there$"), r"<\1> is not allowed there"),
    (re.compile(r"^Element (\S+): ID (\S+) redefined$"), r"the id \2 is used twice"),
    (re.compile(r"^ID (\S+) redefined$"), r"the id \1 is used twice"),
    (re.compile(r"^Type (\S+) doesn't allow value '(.*)'$"), r"\2 is not a valid \1"),
    (re.compile(r"^Value '(.*)' doesn't match any of the allowed values"), r"\1 is not allowed"),
)


def _readable(message: str) -> str:
    message = message.strip()
    for pattern, replacement in _READABLE:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


def _locate(root: etree._Element, entry: etree._LogEntry) -> tuple[etree._Element | None, str]:
    """The element a RelaxNG error is about (when it can be found) and a readable message."""
    message = entry.message
    idref = _IDREF_RE.search(message)
    if idref:
        attribute, target = idref[1], idref[2]
        matches = (
            root.xpath(f"//*[@{attribute}=$v]", v=target)
            if attribute.isidentifier() or (re.fullmatch(r"[A-Za-z_][\w.-]*", attribute))
            else []
        )
        element = matches[0] if matches else None
        return element, f"{attribute}={target!r} names no element of this CIB"
    element = None
    path = getattr(entry, "path", None)
    if path:
        try:
            found = root.getroottree().xpath(path)
        except etree.XPathError:
            found = []
        if found and isinstance(found[0], etree._Element):
            element = found[0]
    if element is None and entry.line:
        element = _element_at_line(root, entry.line)
    if message.strip() == "Invalid sequence in interleave" and element is not None:
        return element, (
            f"the attributes or children of <{element.tag}> do not match the schema (one "
            "required is missing, or one is not allowed or has a bad value)"
        )
    return element, _readable(message)


def _element_at_line(root: etree._Element, line: int) -> etree._Element | None:
    for element in root.iter():
        if isinstance(element.tag, str) and element.sourceline == line:
            return element
    return None


# --- semantic checks -----------------------------------------------------------------------


def _check_semantics(root: etree._Element, out: _Collector, devices_outside_cib: bool) -> None:
    config = root.find("configuration")
    if config is None:
        out.add(root, "<cib> has no <configuration> section")
        return
    _check_ids(config, out)
    _check_resources(config, out)
    _check_constraints(config, out)
    if not devices_outside_cib:
        _check_fencing(config, out)


def _elements(parent: etree._Element) -> Iterator[etree._Element]:
    for element in parent.iter():
        if isinstance(element.tag, str):
            yield element


def _check_ids(config: etree._Element, out: _Collector) -> None:
    first: dict[str, etree._Element] = {}
    for element in _elements(config):
        ident = element.get("id")
        if ident is None or element.get("id-ref") is not None:
            continue
        if element.tag in ("resource_ref", "obj_ref", "role"):
            continue  # references, not definitions
        if element.tag == "node" or any(a.tag == "nodes" for a in element.iterancestors()):
            continue  # node ids are their own namespace (a remote node is named as its resource)
        if ident in first:
            other = first[ident]
            out.add(
                element,
                f"the id {ident!r} is also used by <{other.tag}> at line {other.sourceline}; "
                "ids must be unique",
            )
        else:
            first[ident] = element


def parse_interval_ms(text: str) -> int | None:
    """An interval or timeout as Pacemaker reads it, in milliseconds; None if unparsable.

    Accepted: a number with an optional unit (ms, msec, us, usec, s, sec, m, min, h, hr;
    seconds by default) or an ISO 8601 duration (`P40S`, `PT1M30S`, `P1DT2H`).
    """
    text = text.strip()
    match = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", text)
    if match:
        unit = match[2].lower()
        factors = {
            "": 1000,
            "s": 1000,
            "sec": 1000,
            "ms": 1,
            "msec": 1,
            "us": 0,
            "usec": 0,
            "m": 60_000,
            "min": 60_000,
            "h": 3_600_000,
            "hr": 3_600_000,
        }
        if unit not in factors:
            return None
        value = int(match[1])
        return value // 1000 if unit in ("us", "usec") else value * factors[unit]
    # ISO 8601, leniently as Pacemaker: the T may be left out when no minutes follow it.
    iso = re.fullmatch(
        r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?",
        text.upper(),
    )
    if iso and any(iso.groups()):
        years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in iso.groups())
        total = (
            years * 31_536_000
            + months * 2_592_000
            + weeks * 604_800
            + days * 86_400
            + hours * 3600
            + minutes * 60
            + seconds
        )
        return total * 1000
    return None


def _meta(element: etree._Element, name: str) -> str | None:
    """A meta attribute's value (the last one set wins, as in Pacemaker 2.1)."""
    value = None
    for nvpair in element.iterfind("meta_attributes/nvpair"):
        if nvpair.get("name") == name:
            value = nvpair.get("value")
    return value


def _resource_defs(config: etree._Element) -> dict[str, etree._Element]:
    """What a constraint may name: top-level resources and templates, and group members.

    The child of a clone is not a valid target (Pacemaker ignores such a constraint), except
    when the status section records it under its own id: Pacemaker then knows an instance by
    that name (an anonymous clone's history), and `_status_names` adds those.
    """
    resources = config.find("resources")
    found: dict[str, etree._Element] = {}
    if resources is None:
        return found
    for element in resources:
        if not isinstance(element.tag, str) or element.tag not in (*_RESOURCE_TAGS, "template"):
            continue
        found.setdefault(element.get("id", ""), element)
        if element.tag == "group":
            for child in element.iterfind("primitive"):
                found.setdefault(child.get("id", ""), child)
    return found


def _clone_children(config: etree._Element) -> dict[str, etree._Element]:
    """Resources inside clones, by id, with the clone holding them."""
    found: dict[str, etree._Element] = {}
    resources = config.find("resources")
    if resources is None:
        return found
    for clone in resources:
        if clone.tag not in ("clone", "master"):
            continue
        for element in clone.iter("primitive", "group"):
            found.setdefault(element.get("id", ""), clone)
    return found


def _status_names(config: etree._Element) -> set[str]:
    root = config.getparent()
    if root is None:
        return set()
    return {
        r.get("id", "") for r in root.iterfind("status/node_state/lrm/lrm_resources/lrm_resource")
    }


def _check_resources(config: etree._Element, out: _Collector) -> None:
    resources = config.find("resources")
    if resources is None:
        return
    stonith_enabled = _cluster_option(config, "stonith-enabled", "true").lower() not in _FALSE
    online = _any_node_online(config)
    active = _active_resources(config)
    for element in _elements(resources):
        if element.tag in ("clone", "master"):
            inner = [c for c in element if isinstance(c.tag, str) and c.tag in _RESOURCE_TAGS]
            for child in inner:
                if child.tag in ("clone", "master", "bundle"):
                    out.add(child, f"a <{child.tag}> cannot be inside a <{element.tag}>")
        if element.tag == "group":
            for child in element:
                if isinstance(child.tag, str) and child.tag in ("group", "clone", "master"):
                    out.add(child, f"a group may hold only primitives, not a <{child.tag}>")
        if element.tag in _RESOURCE_TAGS:
            _check_target_role(element, out)
        if element.tag in ("primitive", "template"):
            _check_ops(element, stonith_enabled, online, active, out)


def _promotable(element: etree._Element) -> bool:
    """Whether `element` is, or is inside, a promotable clone."""
    node: etree._Element | None = element
    while node is not None:
        if node.tag == "master":
            return True
        if node.tag == "clone":
            value = _meta(node, "promotable")
            return value is not None and value.lower() in _TRUE
        node = node.getparent()
    return False


def _check_target_role(element: etree._Element, out: _Collector) -> None:
    role = _meta(element, "target-role")
    if role is None:
        return
    if role.lower() in ("promoted", "unpromoted", "master", "slave") and not _promotable(element):
        out.add(
            element,
            f"target-role {role!r} makes sense only in a promotable clone (Pacemaker ignores it)",
        )


_ON_FAIL = ("ignore", "block", "stop", "restart", "standby", "fence", "restart-container", "demote")


def _op_role(op: etree._Element) -> str:
    role = (op.get("role") or "").lower()
    return {"master": "promoted", "slave": "unpromoted"}.get(role, role)


def _check_ops(
    primitive: etree._Element,
    stonith_enabled: bool,
    online: bool,
    active: set[str],
    out: _Collector,
) -> None:
    seen: dict[tuple[str, int], etree._Element] = {}
    for op in primitive.iterfind("operations/op"):
        name = op.get("name", "")
        interval_text = op.get("interval", "0")
        interval = parse_interval_ms(interval_text)
        # crm_verify accepts a CIB with an unreadable duration (Pacemaker falls back to a
        # default), so these are warnings: the verdict stays crm_verify's.
        if interval is None:
            out.add(
                op,
                f"interval {interval_text!r} is not a duration (e.g. 10s, 1min, PT10S)",
                "warning",
            )
            continue
        for attribute in ("timeout", "start-delay"):
            value = op.get(attribute)
            if value is not None and parse_interval_ms(value) is None:
                out.add(
                    op,
                    f"{attribute} {value!r} is not a duration (e.g. 20s, 2min, PT20S)",
                    "warning",
                )
        if interval > 0 and (name, interval) in seen:
            other = seen[(name, interval)]
            out.add(
                op,
                f"duplicates operation {other.get('id')!r} (line {other.sourceline}): the same "
                f"name {name!r} and interval {interval_text!r} (roles do not make them distinct)",
            )
        else:
            seen.setdefault((name, interval), op)
        on_fail = op.get("on-fail")
        if on_fail is None:
            continue
        if on_fail not in _ON_FAIL:
            out.add(op, f"on-fail {on_fail!r} is not one of {', '.join(_ON_FAIL)}")
            continue
        # Pacemaker checks these only for the actions it creates (crm_verify: errors for a
        # cluster that would run the action, nothing for a configuration alone): a stop exists
        # when the resource is active, other actions once a node is online. Errors then,
        # warnings otherwise, to keep crm_verify's verdict.
        created = primitive.get("id") in active if name == "stop" else online
        severity: Severity = "error" if created else "warning"
        if on_fail == "stop" and name == "stop":
            out.add(
                op,
                "on-fail 'stop' is not allowed for the stop action (Pacemaker uses the default)",
                severity,
            )
        elif on_fail == "fence" and not stonith_enabled and name != "stop":
            out.add(
                op,
                "on-fail 'fence' needs fencing, but stonith-enabled is false (Pacemaker stops "
                "the resource instead)",
                severity,
            )
        elif on_fail == "demote" and not (name == "promote" or _op_role(op) == "promoted"):
            out.add(
                op,
                "on-fail 'demote' is allowed only for promote and Promoted monitor ops "
                "(Pacemaker uses the default)",
                severity,
            )


def _any_node_online(config: etree._Element) -> bool:
    """Whether the status section shows a node that is up (member and its controller online)."""
    root = config.getparent()
    if root is None:
        return False
    for state in root.iterfind("status/node_state"):
        in_ccm = (state.get("in_ccm") or "false").lower()
        if in_ccm not in _FALSE and (state.get("crmd") or "").lower() in ("online", "true"):
            return True
    return False


def _active_resources(config: etree._Element) -> set[str]:
    """Ids of resources with an operation history on an online node (clone instances `id:N`
    counted under `id`)."""
    root = config.getparent()
    found: set[str] = set()
    if root is None:
        return found
    for state in root.iterfind("status/node_state"):
        in_ccm = (state.get("in_ccm") or "false").lower()
        if in_ccm in _FALSE or (state.get("crmd") or "").lower() not in ("online", "true"):
            continue
        for resource in state.iterfind("lrm/lrm_resources/lrm_resource"):
            if resource.find("lrm_rsc_op") is not None:
                found.add(resource.get("id", "").split(":")[0])
    return found


def _cluster_option(config: etree._Element, name: str, default: str) -> str:
    for nvpair in config.iterfind("crm_config/cluster_property_set/nvpair"):
        if nvpair.get("name") == name and nvpair.get("value") is not None:
            return nvpair.get("value", default)
    return default


def _check_fencing(config: etree._Element, out: _Collector) -> None:
    if _cluster_option(config, "stonith-enabled", "true").lower() in _FALSE:
        return
    if _cluster_option(config, "have-watchdog", "false").lower() in _TRUE:
        return  # watchdog-based fencing (sbd) fences without a stonith resource
    resources = config.find("resources")
    if resources is None:
        return
    primitives = list(resources.iter("primitive"))
    if primitives and not any(p.get("class") == "stonith" for p in primitives):
        out.add(
            resources,
            "fencing is enabled (stonith-enabled defaults to true) but no stonith resource is "
            "defined, so no resource will start: define one or set stonith-enabled=false",
        )


_ORDER_KINDS = ("Mandatory", "Optional", "Serialize")


def _check_constraints(config: etree._Element, out: _Collector) -> None:
    constraints = config.find("constraints")
    if constraints is None:
        return
    resources = _resource_defs(config)
    tags = {t.get("id") for t in config.iterfind("tags/tag")}
    templates = {i for i, e in resources.items() if e.tag == "template"}
    in_clones = _clone_children(config)
    known = set(resources) | {t for t in tags if t} | (set(in_clones) & _status_names(config))

    def check(element: etree._Element, what: str, target: str) -> None:
        if target in known:
            return
        if target in in_clones:
            clone = in_clones[target]
            out.add(
                element,
                f"{what} {target!r} is inside the clone {clone.get('id')!r}: name the clone "
                "(Pacemaker ignores this constraint)",
            )
        else:
            out.add(element, f"{what} {target!r} is not a resource, template or tag")

    refs = {
        "rsc_location": ("rsc",),
        "rsc_colocation": ("rsc", "with-rsc"),
        "rsc_order": ("first", "then"),
        "rsc_ticket": ("rsc",),
    }
    for constraint in constraints:
        if not isinstance(constraint.tag, str) or constraint.tag not in refs:
            continue
        for attribute in refs[constraint.tag]:
            target = constraint.get(attribute)
            if target is not None:
                check(constraint, attribute, target)
        for ref in constraint.iterfind("resource_set/resource_ref"):
            check(ref, "resource_ref", ref.get("id", ""))
        if constraint.tag == "rsc_order":
            kind = constraint.get("kind")
            if kind is not None and kind not in _ORDER_KINDS:
                out.add(constraint, f"kind {kind!r} is not one of {', '.join(_ORDER_KINDS)}")
            _check_self_order(constraint, resources, out)
        if constraint.tag == "rsc_colocation":
            influence = constraint.get("influence")
            if influence is not None and influence.lower() not in _TRUE | _FALSE:
                out.add(constraint, f"influence {influence!r} is not true or false")
            pair = [constraint.get("rsc"), constraint.get("with-rsc")]
            if all(p is not None and (p in templates or p in tags) for p in pair):
                out.add(constraint, "two templates or tags cannot be colocated")


def _check_self_order(
    constraint: etree._Element, resources: dict[str, etree._Element], out: _Collector
) -> None:
    """An action ordered after itself (`first` = `then`, same action): meaningless; for a
    group, clone or bundle Pacemaker 2.1.5 aborts. (demote X then promote X is fine.)"""
    first_action = constraint.get("first-action", "start")
    then_action = constraint.get("then-action", first_action)
    pairs: list[str | None] = []
    if first_action == then_action and constraint.get("first") == constraint.get("then"):
        pairs.append(constraint.get("first"))
    sets = [
        (s.get("action", "start"), [r.get("id") for r in s.iterfind("resource_ref")])
        for s in constraint.iterfind("resource_set")
    ]
    for (action_a, before), (action_b, after) in itertools.pairwise(sets):
        if action_a == action_b:
            pairs.extend(x for x in before if x in after)
    for rid in pairs:
        if rid is None:
            continue
        element = resources.get(rid)
        if element is not None and element.tag in ("group", "clone", "master", "bundle"):
            out.add(
                constraint,
                f"orders the {element.tag} {rid!r} after itself: meaningless, and Pacemaker "
                "2.1.5 aborts on it (crm_verify crashes)",
            )
        else:
            out.add(constraint, f"orders {rid!r} after itself: meaningless", "warning")
