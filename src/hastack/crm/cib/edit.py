"""Edit a CIB document as Pacemaker's command-line tools do, all or nothing.

The edits work on the XML tree (lxml), not on the model, so that everything the model does not
know — comments, attributes of newer Pacemaker versions, ACLs — survives an edit untouched.
Each function changes the tree it is given or raises :class:`EditError` having changed nothing;
:func:`apply_edit` runs one on a document's bytes and returns the new bytes, with the version
counters bumped as the CIB manager bumps them, only when the result is no worse than the input
(see :func:`apply_edit`).

The generic edits are cibadmin's: ``query`` (``-Q``, with ``--xpath`` or ``-o SECTION``),
``create`` (``-C -o SECTION -X XML``), ``modify`` (``-M``: attributes set, children merged by
tag and id), ``replace`` (``-R``) and ``delete`` (``-D``). The attribute edits are
crm_attribute's and crm_resource's, and name their nvpairs exactly as those tools do
(``cib-bootstrap-options-NAME``, ``nodes-ID-NAME``, ``status-ID-NAME``,
``RSC-instance_attributes-NAME``, ``RSC-meta_attributes-NAME``), so a CIB edited by either
reads the same: :func:`set_attribute` and :func:`get_attribute` for cluster options
(``crm_attribute -t crm_config``), ``rsc_defaults``/``op_defaults``, node attributes
(``crm_attribute -N NODE``, ``-l forever|reboot``) and resource parameters and
meta-attributes (``crm_resource --set-parameter``, with ``--meta``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from hastack.crm.cib.validate import DEFAULT_SCHEMA_DIR, Problem, validate

__all__ = [
    "SECTIONS",
    "AttributeOwner",
    "EditError",
    "EditResult",
    "apply_edit",
    "create",
    "delete",
    "get_attribute",
    "modify",
    "parse_fragment",
    "query",
    "replace",
    "set_attribute",
]

# The sections `-o/--scope` names, as cibadmin knows them; each is a child of <configuration>
# except `configuration` and `status` (children of <cib>).
SECTIONS = (
    "configuration",
    "nodes",
    "resources",
    "constraints",
    "crm_config",
    "rsc_defaults",
    "op_defaults",
    "fencing-topology",
    "tags",
    "acls",
    "alerts",
    "status",
)
_RESOURCE_TAGS = ("primitive", "group", "clone", "master", "bundle", "template")
_CONSTRAINT_REFS = ("rsc", "with-rsc", "first", "then", "id")  # attributes naming a resource
_REFERENCE_TAGS = ("resource_ref", "obj_ref", "role")  # their id names another element
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class EditError(Exception):
    """An edit that cannot be made; nothing was changed."""


@dataclass
class EditResult:
    """What :func:`apply_edit` produced."""

    data: bytes  # the new document (the old one when nothing changed)
    changed: bool
    summary: str  # one line saying what was done
    epoch: tuple[int, int, int]  # admin_epoch, epoch, num_updates after the edit
    # problems the edit added (refused unless forced) and those the document had already
    new_problems: list[Problem] = field(default_factory=list)
    old_problems: list[Problem] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading fragments and finding elements


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def parse_fragment(text: str | bytes, what: str = "the XML given") -> etree._Element:
    """One XML element from the command line or a file; EditError when it is not one."""
    data = text.encode() if isinstance(text, str) else text
    try:
        element = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise EditError(f"{what} is not well-formed XML: {exc.msg}") from None
    if element is None:
        raise EditError(f"{what} is empty")
    return element


def _root_of(doc: etree._Element) -> etree._Element:
    if doc.tag != "cib":
        raise EditError(f"the document's root element is <{doc.tag}>, not <cib>")
    return doc


def _section(root: etree._Element, name: str, *, create: bool = False) -> etree._Element:
    """The <name> section of the CIB (creating an empty one when asked)."""
    if name not in SECTIONS:
        raise EditError(f"unknown section {name!r}; the sections are: {', '.join(SECTIONS)}")
    if name == "configuration" or name == "status":
        parent = root
    else:
        parent = root.find("configuration")
        if parent is None:
            raise EditError("the CIB has no <configuration> section")
    found = parent.find(name)
    if found is None:
        if not create:
            raise EditError(f"the CIB has no <{name}> section")
        found = etree.SubElement(parent, name)
    return found


def _tag(element: etree._Element) -> str:
    """``<primitive id="db">``: how messages name an element."""
    ident = element.get("id")
    return f'<{element.tag} id="{ident}">' if ident else f"<{element.tag}>"


def _describe(element: etree._Element) -> str:
    """The element and, when it came from the file, its line."""
    where = f" at line {element.sourceline}" if element.sourceline else ""
    return _tag(element) + where


def _by_id(root: etree._Element, ident: str, tag: str | None = None) -> list[etree._Element]:
    """Every element whose id is `ident` (of tag `tag`), definitions only (not id-refs)."""
    found = []
    for element in root.iter(tag if tag is not None else etree.Element):
        if element.get("id") == ident and element.get("id-ref") is None:
            found.append(element)
    return found


def _target(root: etree._Element, fragment: etree._Element) -> etree._Element:
    """The one element of the CIB a fragment names: by tag and id, or a section or <cib>."""
    tag, ident = fragment.tag, fragment.get("id")
    if tag == "cib":
        return root
    if ident is None:
        if tag in SECTIONS:
            return _section(root, tag)
        raise EditError(f"<{tag}> has no id: say which element to change with its id attribute")
    matches = _by_id(root, ident, tag)
    if not matches:
        raise EditError(f'no <{tag} id="{ident}"> in the CIB')
    if len(matches) > 1:  # nodes and their transient attributes share ids, but not tags
        where = ", ".join(_describe(m) for m in matches)
        raise EditError(f'<{tag} id="{ident}"> is ambiguous: {where}')
    return matches[0]


def query(
    doc: etree._Element, *, xpath: str | None = None, scope: str | None = None
) -> list[etree._Element]:
    """The elements an XPath selects (cibadmin -Q --xpath), a section (-o), or the whole CIB."""
    root = _root_of(doc)
    if xpath is not None:
        try:
            result = root.xpath(xpath)
        except etree.XPathError as exc:
            raise EditError(f"bad XPath expression {xpath!r}: {exc}") from None
        if not isinstance(result, list):
            raise EditError(f"the XPath expression {xpath!r} selects a value, not elements")
        return [e for e in result if isinstance(e, etree._Element)]
    if scope is not None:
        return [_section(root, scope)]
    return [root]


# --------------------------------------------------------------------------------------------
# cibadmin's edits


def _configuration_ids(root: etree._Element) -> dict[str, etree._Element]:
    """Ids defined in the configuration, in the namespace crm_verify checks (not nodes)."""
    config = root.find("configuration")
    ids: dict[str, etree._Element] = {}
    if config is None:
        return ids
    nodes = config.find("nodes")
    for element in config.iter(etree.Element):
        ident = element.get("id")
        if ident is None or element.get("id-ref") is not None:
            continue
        if element.tag in _REFERENCE_TAGS:
            continue
        if nodes is not None and (element is nodes or nodes in element.iterancestors()):
            continue
        ids.setdefault(ident, element)
    return ids


def create(doc: etree._Element, scope: str, fragment: etree._Element) -> str:
    """Add `fragment` to section `scope` (cibadmin -C); its ids must be new."""
    root = _root_of(doc)
    section = _section(root, scope, create=scope != "configuration")
    if scope != "status" and section.tag != "nodes":
        taken = _configuration_ids(root)
        for element in fragment.iter(etree.Element):
            ident = element.get("id")
            if element.tag in _REFERENCE_TAGS or element.get("id-ref") is not None:
                continue  # a reference names an element, it does not define one
            if ident is not None and ident in taken:
                raise EditError(
                    f'cannot create <{element.tag} id="{ident}">: the id is already used by '
                    f"{_describe(taken[ident])}"
                )
    elif fragment.get("id") is not None and _by_id(section, fragment.get("id"), fragment.tag):
        raise EditError(f"cannot create {_describe(fragment)}: it exists already in <{scope}>")
    section.append(copy.deepcopy(fragment))
    return f"created {_tag(fragment)} in <{scope}>"


def _merge(target: etree._Element, fragment: etree._Element) -> None:
    for name, value in fragment.attrib.items():
        target.set(name, value)
    for child in fragment:
        if not isinstance(child.tag, str):
            continue
        ident = child.get("id")
        if ident is not None:
            same = [c for c in target if c.tag == child.tag and c.get("id") == ident]
        else:
            same = [c for c in target if c.tag == child.tag and c.get("id") is None]
            if len(same) > 1:
                raise EditError(
                    f"<{child.tag}> without an id matches {len(same)} children of "
                    f"{_describe(target)}: give it an id"
                )
        if same:
            _merge(same[0], child)
        else:
            target.append(copy.deepcopy(child))


def modify(doc: etree._Element, fragment: etree._Element) -> str:
    """Set the fragment's attributes on the element it names and merge its children (matched
    by tag and id, added when new), as cibadmin -M does."""
    root = _root_of(doc)
    target = _target(root, fragment)
    _merge(target, fragment)
    return f"modified {_tag(target)}"


def replace(doc: etree._Element, fragment: etree._Element) -> str:
    """Put `fragment` in place of the element with its tag and id (or the section of its
    tag), as cibadmin -R does."""
    root = _root_of(doc)
    if fragment.tag == "cib":
        raise EditError("replacing the whole <cib> is not an edit: write the file instead")
    target = _target(root, fragment)
    parent = target.getparent()
    assert parent is not None
    new = copy.deepcopy(fragment)
    new.tail = target.tail
    parent.replace(target, new)
    return f"replaced {_tag(fragment)}"


def _references(root: etree._Element, ident: str) -> list[etree._Element]:
    """Constraints and tags that name the resource `ident`."""
    config = root.find("configuration")
    if config is None:
        return []
    refs = []
    for section in ("constraints", "tags"):
        holder = config.find(section)
        if holder is None:
            continue
        for item in holder:
            if not isinstance(item.tag, str):
                continue
            named = any(item.get(a) == ident for a in _CONSTRAINT_REFS if a != "id") or any(
                ref.get("id") == ident
                for ref in item.iter("resource_ref", "obj_ref")
                if ref is not item
            )
            if named:
                refs.append(item)
    return refs


def delete(
    doc: etree._Element,
    *,
    fragment: etree._Element | None = None,
    element_id: str | None = None,
    cascade: bool = False,
) -> str:
    """Remove one element, named by a fragment (tag and id) or by its id alone (cibadmin -D).

    Unlike cibadmin, a resource that constraints or tags still name is not deleted unless
    `cascade` also deletes them: a constraint on a missing resource makes the CIB invalid."""
    root = _root_of(doc)
    if fragment is not None:
        target = _target(root, fragment)
    else:
        if not element_id:
            raise EditError("say what to delete: an XML element or --id ID")
        config = root.find("configuration")
        matches = _by_id(config if config is not None else root, element_id)
        matches = [m for m in matches if m.tag != "node"] or matches
        if not matches:
            raise EditError(f"no element with id {element_id!r} in the configuration")
        if len(matches) > 1:
            where = ", ".join(_describe(m) for m in matches)
            raise EditError(f"the id {element_id!r} is ambiguous: {where}; give the XML element")
        target = matches[0]
    if target is root or target.tag in SECTIONS:
        raise EditError(f"{_describe(target)} is a section and cannot be deleted")
    removed = [target]
    if target.tag in _RESOURCE_TAGS:
        ids = {e.get("id") for e in target.iter(*_RESOURCE_TAGS)}
        refs: list[etree._Element] = []
        for ident in sorted(i for i in ids if i):
            refs += [r for r in _references(root, ident) if r not in refs]
        if refs and not cascade:
            names = ", ".join(_describe(r) for r in refs)
            raise EditError(
                f"{_describe(target)} is named by {names}; delete those first, or use "
                "--cascade to delete them with it"
            )
        removed += refs
    for element in removed:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    what = ", ".join(_tag(e) for e in removed)
    return f"deleted {what}"


# --------------------------------------------------------------------------------------------
# crm_attribute's and crm_resource's edits


def _safe_id(text: str) -> str:
    """An XML id made of `text`, as Pacemaker makes them (unsafe characters become '.')."""
    ident = _ID_UNSAFE.sub(".", text)
    return ident if ident[:1].isalpha() or ident[:1] == "_" else f"_{ident}"


def _unique_id(root: etree._Element, wanted: str) -> str:
    taken = {e.get("id") for e in root.iter(etree.Element)}
    if wanted not in taken:
        return wanted
    n = 1
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


@dataclass(frozen=True)
class AttributeOwner:
    """Whose attribute: ``kind`` is ``property`` (crm_config), ``rsc_defaults``,
    ``op_defaults``, ``node`` (``owner`` = node name; ``lifetime`` forever or reboot) or
    ``resource`` (``owner`` = resource id; ``meta`` for a meta-attribute)."""

    kind: str
    owner: str | None = None
    meta: bool = False
    lifetime: str = "forever"


@dataclass
class _Holder:
    element: etree._Element | None  # None: it does not exist yet (and nothing is set there)
    set_tag: str
    default_set: str
    what: str
    make: Callable[[], etree._Element] | None = None  # creates `element` for a first value


def _holder(root: etree._Element, who: AttributeOwner) -> _Holder:
    """Where `who`'s attribute sets live, and the set id Pacemaker's tools give a new one."""
    kind = who.kind
    if kind == "property":
        config = root.find("configuration")
        element = config.find("crm_config") if config is not None else None
        return _Holder(
            element,
            "cluster_property_set",
            "cib-bootstrap-options",
            "the cluster options",
            lambda: _section(root, "crm_config", create=True),
        )
    if kind in ("rsc_defaults", "op_defaults"):
        config = root.find("configuration")
        element = config.find(kind) if config is not None else None
        default = "rsc-options" if kind == "rsc_defaults" else "op-options"
        return _Holder(
            element,
            "meta_attributes",
            default,
            f"<{kind}>",
            lambda: _section(root, kind, create=True),
        )
    if kind == "node":
        node = _node(root, who.owner or "")
        node_id = node.get("id") or (who.owner or "")
        if who.lifetime == "forever":
            return _Holder(node, "instance_attributes", f"nodes-{node_id}", f"node {who.owner}")
        if who.lifetime != "reboot":
            raise EditError(f"the lifetime is forever or reboot, not {who.lifetime!r}")
        status = root.find("status")
        state = None
        if status is not None:
            state = next((s for s in status.findall("node_state") if s.get("id") == node_id), None)
        if state is None:
            raise EditError(
                f"node {who.owner} has no entry in the status section: a transient (reboot) "
                "attribute needs a node the cluster has seen; use --lifetime forever"
            )
        node_state = state

        def make_transient() -> etree._Element:
            transient = etree.Element("transient_attributes", id=node_id)
            node_state.insert(0, transient)
            return transient

        return _Holder(
            state.find("transient_attributes"),
            "instance_attributes",
            f"status-{node_id}",
            f"node {who.owner} (until it reboots)",
            make_transient,
        )
    if kind == "resource":
        rsc = who.owner or ""
        resources = _section(root, "resources")
        found = [e for e in resources.iter(*_RESOURCE_TAGS) if e.get("id") == rsc]
        if not found:
            known = sorted(e.get("id") or "" for e in resources.iter(*_RESOURCE_TAGS))
            raise EditError(f"no resource {rsc!r}; the resources are: {', '.join(known) or 'none'}")
        element = found[0]
        if not who.meta and element.tag not in ("primitive", "template"):
            raise EditError(
                f"{_describe(element)} is a {element.tag}: only primitives and templates have "
                "parameters (use --meta for a meta-attribute)"
            )
        set_tag = "meta_attributes" if who.meta else "instance_attributes"
        what = f"resource {rsc} ({'meta-attribute' if who.meta else 'parameter'})"
        return _Holder(element, set_tag, f"{rsc}-{set_tag}", what)
    raise EditError(
        f"unknown attribute kind {kind!r}: property, rsc_defaults, op_defaults, node, resource"
    )


def _pairs(
    holder: _Holder, name: str, chosen_set: str | None
) -> tuple[list[etree._Element], list[tuple[etree._Element, etree._Element]]]:
    """The holder's sets (the chosen one only, when given) and their nvpairs named `name`."""
    if holder.element is None:
        return [], []
    sets = [s for s in holder.element if s.tag == holder.set_tag]
    if chosen_set is not None:
        sets = [s for s in sets if s.get("id") == chosen_set]
    return sets, [(s, p) for s in sets for p in s.findall("nvpair") if p.get("name") == name]


def get_attribute(
    doc: etree._Element, who: AttributeOwner, name: str, *, set_id: str | None = None
) -> list[tuple[str, str]]:
    """Every (set id, value) of the attribute `name` of `who` (crm_attribute -G): usually
    one, none when unset, several when sets guarded by rules each give it."""
    root = _root_of(doc)
    _, pairs = _pairs(_holder(root, who), name, set_id)
    return [(s.get("id") or "", p.get("value") or "") for s, p in pairs]


def set_attribute(
    doc: etree._Element,
    who: AttributeOwner,
    name: str,
    value: str | None,
    *,
    set_id: str | None = None,
) -> str:
    """Set (value None: delete) the attribute `name` of `who`, as crm_attribute (cluster
    options, defaults, node attributes) and crm_resource --set-parameter do.

    One existing nvpair of that name is updated wherever it is; several are ambiguous unless
    `set_id` picks the set. A new one goes into the set `set_id`, else into the set with the
    id those tools use (``cib-bootstrap-options``, ``nodes-ID``, ``RSC-meta_attributes``,
    ...), made when missing even if other sets exist, as they do. The new nvpair's id is the
    set's id and the name joined by ``-``, as those tools make it."""
    root = _root_of(doc)
    holder = _holder(root, who)
    sets, pairs = _pairs(holder, name, set_id)
    if len(pairs) > 1:
        where = ", ".join(f"{p.get('id')} (in set {s.get('id')})" for s, p in pairs)
        raise EditError(
            f"{holder.what} has {len(pairs)} attributes named {name!r}: {where}; choose the "
            "set with --set SET_ID"
        )
    if value is None:
        if not pairs:  # as crm_attribute -D: deleting what is not there is not an error
            return f"{holder.what} has no attribute {name} (nothing to delete)"
        attr_set, pair = pairs[0]
        attr_set.remove(pair)
        return f"deleted {name} from {holder.what}"
    if pairs:
        _, pair = pairs[0]
        old = pair.get("value")
        pair.set("value", value)
        return f"set {name}={value} on {holder.what} (was {old})"
    target = next((s for s in sets if s.get("id") == (set_id or holder.default_set)), None)
    if target is None:
        parent = holder.element
        if parent is None:
            assert holder.make is not None
            parent = holder.make()
        # appended, as crm_attribute does: the schema lets these sets come in any order
        new_id = _unique_id(root, set_id or holder.default_set)
        target = etree.SubElement(parent, holder.set_tag, id=new_id)
    pair = etree.SubElement(target, "nvpair")
    pair.set("id", _unique_id(root, _safe_id(f"{target.get('id')}-{name}")))
    pair.set("name", name)
    pair.set("value", value)
    return f"set {name}={value} on {holder.what}"


def _node(root: etree._Element, uname: str) -> etree._Element:
    nodes = _section(root, "nodes")
    for node in nodes.findall("node"):
        if node.get("uname") == uname:
            return node
    known = sorted(n.get("uname") or "" for n in nodes.findall("node"))
    raise EditError(
        f"no node named {uname!r} in <nodes>; the nodes are: {', '.join(known) or 'none'}"
    )


# --------------------------------------------------------------------------------------------
# One edit, all or nothing


def _versions(root: etree._Element) -> tuple[int, int, int]:
    def number(name: str) -> int:
        try:
            return int(root.get(name, "0"))
        except ValueError:
            raise EditError(
                f"<cib> has a {name} that is not a number: {root.get(name)!r}"
            ) from None

    return number("admin_epoch"), number("epoch"), number("num_updates")


def _problem_key(problem: Problem) -> tuple[str | None, str | None, str, str]:
    # lines move when elements are added: a problem is "the same" by what it says
    return (problem.element, problem.element_id, problem.message, problem.severity)


def apply_edit(
    data: bytes,
    source: str,
    edit: Callable[[etree._Element], str],
    *,
    client: str = "hastack",
    force: bool = False,
    schema_dir: str | None = None,
) -> EditResult:
    """Run `edit` on the CIB document `data` (named `source` in messages) and return the new
    document, or raise EditError.

    A change to the configuration increases ``epoch`` and resets ``num_updates``; a change to
    the status section alone increases ``num_updates`` (as the CIB manager does), unless the
    edit set those counters itself. The result is validated (schema and crm_verify's checks)
    and refused when it has an error the input did not have, unless `force`."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise EditError(f"{source}: not well-formed XML: {exc.msg}") from None
    root = _root_of(root)
    before = etree.tostring(root, method="c14n")
    config_before = _c14n(root.find("configuration"))
    versions_before = _versions(root)
    summary = edit(root)
    after_edit = etree.tostring(root, method="c14n")
    if after_edit == before:
        return EditResult(data, False, f"{summary} (no change)", versions_before)
    _, epoch, num_updates = versions_before
    if _versions(root) == versions_before:  # the edit did not set the counters itself
        if _c14n(root.find("configuration")) != config_before:
            epoch, num_updates = epoch + 1, 0
        else:
            num_updates += 1
        root.set("epoch", str(epoch))
        root.set("num_updates", str(num_updates))
        root.set("update-client", client)
    for element in root.iter(etree.Element):
        if len(element) == 0 and element.text is not None and not element.text.strip():
            element.text = None  # whitespace left behind by a deleted child
    etree.indent(root, space="  ")
    new = etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    directory = DEFAULT_SCHEMA_DIR if schema_dir is None else Path(schema_dir)
    old_problems = validate(data, source, directory)
    new_problems_all = validate(new, source, directory)
    known = {_problem_key(p) for p in old_problems}
    added = [p for p in new_problems_all if _problem_key(p) not in known]
    errors = [p for p in added if p.severity == "error"]
    result = EditResult(new, True, summary, _versions(root), added, old_problems)
    if errors and not force:
        listing = "\n".join(f"  {p}" for p in errors)
        raise EditError(
            f"{source}: refused, the edit would make the CIB invalid (--force writes it "
            f"anyway):\n{listing}"
        )
    return result


def _c14n(element: etree._Element | None) -> bytes:
    return b"" if element is None else etree.tostring(element, method="c14n")
