"""Constraints unpacked into the pairs the scheduler works with, as Pacemaker 2.1.5 unpacks them.

A CIB's ``rsc_location``, ``rsc_colocation`` and ``rsc_order`` elements may name a resource, a
tag, a resource pattern or resource sets; the scheduler wants plain pairs. This module turns
each into :class:`Location` (one resource, one node or one rule, one score),
:class:`Colocation` (dependent with primary) and :class:`Ordering` (first then then), keeping
the constraint's id so every score can be traced back to the element that caused it.

Unpacking follows "Pacemaker Explained" (2.1) and the behaviour of crm_simulate 2.1.5:

* a tag stands for every resource it references, a template for every primitive built from
  it; ``rsc-pattern`` is a regular expression over the ids of the top-level resources; a
  colocation between two tags (or templates) creates nothing, as in crm_simulate 2.1.5;
* a role of "Started" means any role;
* in one colocation set with a positive score each member is colocated with the member before
  it; with a negative score each member is anti-colocated with every member before it;
  between two sets, the first member of the earlier set (every member when it is not
  sequential) is colocated with the last member of the later set (every member when it is not
  sequential);
* in an ordering set each member is ordered after the one before it (when sequential), and
  between sets the last member of the earlier set comes before the first of the later one
  (every member of a non-sequential set).

References to resources that do not exist are skipped, as Pacemaker skips them (after a
configuration warning); what the references are is checked by ``hastack cib verify``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from hastack.crm.cib.model import (
    INFINITY,
    Cib,
    Clone,
    Group,
    ResourceSet,
    RscColocation,
    RscLocation,
    RscOrder,
    Rule,
    Template,
    parse_bool,
)
from hastack.crm.rules import char2score

__all__ = [
    "Colocation",
    "Location",
    "Ordering",
    "colocations",
    "locations",
    "orderings",
]


@dataclass(frozen=True)
class Location:
    """One location preference: ``rsc`` on ``node`` (or on the nodes ``rule`` selects)."""

    id: str
    rsc: str
    score: int
    node: str | None = None
    rule: Rule | None = None
    role: str | None = None
    discovery: str | None = None
    re_groups: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class Colocation:
    """``dependent`` wants to be (score > 0) or not to be (score < 0) where ``primary`` is."""

    id: str
    dependent: str
    primary: str
    score: int
    dependent_role: str | None = None
    primary_role: str | None = None
    node_attribute: str | None = None
    influence: bool | None = None  # None: the dependent's "critical" meta-attribute decides


@dataclass(frozen=True)
class Ordering:
    """``first``'s ``first_action`` before ``then``'s ``then_action``; ``mandatory`` when the
    second cannot happen without the first (kind Mandatory, or a positive score)."""

    id: str
    first: str
    then: str
    first_action: str
    then_action: str
    mandatory: bool
    symmetrical: bool
    # require-all="false" (on a set, or a clone's order): one first of this set is enough
    any_of: str | None = None


def _score(text: str | None, default: int = 0) -> int:
    return default if text is None else char2score(text)


def _expand(name: str | None, known: set[str], tags: Mapping[str, tuple[str, ...]]) -> list[str]:
    """A resource or a tag's resources (only those that exist), in reference order."""
    if name is None:
        return []
    if name in known:
        return [name]
    return [r for r in tags.get(name, ()) if r in known]


def _set_members(s: ResourceSet, known: set[str], tags: Mapping[str, tuple[str, ...]]) -> list[str]:
    out: list[str] = []
    for ref in s.resources:
        for r in _expand(ref, known, tags):
            if r not in out:
                out.append(r)
    return out


def _sequential(s: ResourceSet) -> bool:
    try:
        return parse_bool(s.sequential, True)
    except ValueError:
        return True


def _role(text: str | None) -> str | None:
    """A constraint role in Pacemaker 2.1's names; "Started" (like none) means any role."""
    if text is None:
        return None
    value = {"master": "Promoted", "slave": "Unpromoted"}.get(text.lower(), text)
    return None if value.lower() == "started" else value


def _known(cib: Cib) -> tuple[set[str], list[str], dict[str, tuple[str, ...]]]:
    """Every resource id (members of groups and clones too), the top-level ids, and what a
    tag or a template stands for."""
    known: set[str] = set()
    top: list[str] = []
    for r in cib.resources:
        if isinstance(r, Template):
            continue
        top.append(r.id)
        known.add(r.id)
        inner = r.child if isinstance(r, Clone) else r
        if inner is not r:
            known.add(inner.id)
        if isinstance(inner, Group):
            known.update(child.id for child in inner.children)
    tags = {t.id: t.refs for t in cib.tags}
    # A template stands for every primitive built from it, as a tag for its references.
    by_template: dict[str, list[str]] = {}
    for p in cib.all_primitives():
        if p.template is not None:
            by_template.setdefault(p.template, []).append(p.id)
    for t in cib.templates:
        tags.setdefault(t.id, tuple(by_template.get(t.id, ())))
    return known, top, tags


def locations(cib: Cib) -> list[Location]:
    """Every location preference, in document order (rules in their order inside one)."""
    known, top, tags = _known(cib)
    out: list[Location] = []
    for c in cib.constraints:
        if not isinstance(c, RscLocation):
            continue
        targets: list[tuple[str, tuple[str | None, ...], str | None, str | None]] = []
        if c.sets:
            for s in c.sets:
                for r in _set_members(s, known, tags):
                    targets.append((r, (), s.role or c.role, s.score))
        elif c.rsc is not None:
            targets.extend((r, (), c.role, None) for r in _expand(c.rsc, known, tags))
        elif c.rsc_pattern is not None:
            invert = c.rsc_pattern.startswith("!")
            try:
                pattern = re.compile(c.rsc_pattern[1:] if invert else c.rsc_pattern)
            except re.error as err:
                raise ValueError(f"rsc_location {c.id!r}: invalid rsc-pattern: {err}") from err
            for r in top:
                m = pattern.search(r)
                if invert and m is None:
                    targets.append((r, (), c.role, None))
                elif not invert and m is not None:
                    targets.append((r, (m.group(0), *m.groups()), c.role, None))
        for rsc, groups, role, set_score in targets:
            if c.rules:
                for rule in c.rules:
                    out.append(
                        Location(
                            c.id,
                            rsc,
                            0,
                            rule=rule,
                            # (a rule may carry its own role)
                            role=_role(rule.role or role),
                            discovery=c.resource_discovery,
                            re_groups=groups,
                        )
                    )
            elif c.node is not None:
                score = _score(set_score if set_score is not None else c.score)
                out.append(
                    Location(
                        c.id,
                        rsc,
                        score,
                        node=c.node,
                        role=_role(role),
                        discovery=c.resource_discovery,
                    )
                )
    return out


def colocations(cib: Cib) -> list[Colocation]:
    """Every colocation pair, in the order Pacemaker creates them."""
    known, _, tags = _known(cib)
    out: list[Colocation] = []

    def add(
        cid: str,
        dependent: str,
        primary: str,
        score: int,
        roles: tuple[str | None, str | None],
        attr: str | None,
        influence: bool | None,
    ) -> None:
        # (A resource colocated with itself is kept, absurd as it is: crm_simulate applies
        # it, and an anti-colocation with itself drives a resource away from its best node.)
        if score == 0:
            return
        out.append(Colocation(cid, dependent, primary, score, roles[0], roles[1], attr, influence))

    for c in cib.constraints:
        if not isinstance(c, RscColocation):
            continue
        influence: bool | None = None
        if c.influence is not None:
            try:
                influence = parse_bool(c.influence)
            except ValueError:
                influence = None
        score = _score(c.score)
        if not c.sets:
            if c.rsc not in known and c.with_rsc not in known:
                # Tags or templates on both sides: crm_simulate 2.1.5 colocates nothing (it
                # does with a tag on one side, and with explicit sets).
                continue
            roles = (_role(c.rsc_role), _role(c.with_rsc_role))
            for dep in _expand(c.rsc, known, tags):
                for prim in _expand(c.with_rsc, known, tags):
                    add(c.id, dep, prim, score, roles, c.node_attribute, influence)
            continue
        previous: ResourceSet | None = None
        for s in c.sets:
            set_score = _score(s.score, score) if s.score is not None else score
            members = _set_members(s, known, tags)
            role = _role(s.role)
            if _sequential(s) and set_score > 0:
                # ordering="group" (the default): each member with the one before it;
                # ordering="listed": each member with the one after it.
                listed = (s.ordering or "group").lower() == "listed"
                for before, member in pairwise(members):
                    add(
                        s.id or c.id,
                        before if listed else member,
                        member if listed else before,
                        set_score,
                        (role, role),
                        c.node_attribute,
                        influence,
                    )
            elif _sequential(s) and set_score < 0:
                for i, member in enumerate(members):
                    for before in members[:i]:
                        add(
                            s.id or c.id,
                            member,
                            before,
                            set_score,
                            (role, role),
                            c.node_attribute,
                            influence,
                        )
            if previous is not None:
                earlier = _set_members(previous, known, tags)
                deps = earlier[:1] if _sequential(previous) else earlier
                prims = members[-1:] if _sequential(s) else members
                for dep in deps:
                    for prim in prims:
                        add(
                            c.id,
                            dep,
                            prim,
                            score,
                            (_role(previous.role), role),
                            c.node_attribute,
                            influence,
                        )
            previous = s
    return out


def orderings(cib: Cib) -> list[Ordering]:
    """Every ordering pair (the symmetrical inverse is not listed: ``symmetrical`` says it)."""
    known, _, tags = _known(cib)
    out: list[Ordering] = []
    for c in cib.constraints:
        if not isinstance(c, RscOrder):
            continue
        kind = (c.kind or "").lower()
        # Without a kind, a positive score (the default) makes it mandatory, 0 optional.
        mandatory = kind == "mandatory" if kind else _score(c.score, INFINITY) > 0
        if kind == "serialize":
            continue  # only one at a time: no start needs another's
        try:
            symmetrical = parse_bool(c.symmetrical, kind != "serialize")
        except ValueError:
            symmetrical = True
        if not c.sets:
            first_action = c.first_action or "start"
            then_action = c.then_action or first_action
            # require-all="false" (meant for clones): one started instance of first is enough
            try:
                require_all = parse_bool(c.require_all, True)
            except ValueError:
                require_all = True
            for first in _expand(c.first, known, tags):
                for then in _expand(c.then, known, tags):
                    out.append(
                        Ordering(
                            c.id,
                            first,
                            then,
                            first_action,
                            then_action,
                            mandatory,
                            symmetrical,
                            any_of=None if require_all else c.id,
                        )
                    )
            continue
        previous: tuple[ResourceSet, list[str]] | None = None
        for s in c.sets:
            members = _set_members(s, known, tags)
            action = s.action or "start"
            if _sequential(s):
                for before, member in pairwise(members):
                    out.append(
                        Ordering(
                            s.id or c.id, before, member, action, action, mandatory, symmetrical
                        )
                    )
            if previous is not None:
                prev_set, prev_members = previous
                try:
                    require_all = parse_bool(prev_set.require_all, True)
                except ValueError:
                    require_all = True
                firsts = prev_members[-1:] if _sequential(prev_set) else prev_members
                thens = members[:1] if _sequential(s) else members
                for first in firsts:
                    for then in thens:
                        out.append(
                            Ordering(
                                c.id,
                                first,
                                then,
                                prev_set.action or "start",
                                action,
                                mandatory,
                                symmetrical,
                                any_of=None if require_all else (prev_set.id or c.id),
                            )
                        )
            previous = (s, members)
    return out
