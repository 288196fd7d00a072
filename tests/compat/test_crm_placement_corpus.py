"""Compare place() with crm_simulate's "Revised Cluster Status" on Pacemaker's corpus.

Two sets of cases are compared, and reported separately: the original 323 without clones,
promotable clones, bundles, remote or guest nodes and tickets (``_cases()``, which the
transition and graph corpus tests share), and the cases with clones or promotable clones but
none of the other features (``_clone_cases()``; those whose CIB place() still refuses are left
out). A case agrees when every configured primitive (an anonymous clone's instances gathered
under the primitive's id, a globally-unique clone's instances as ``id:N``) is active on the
same nodes in the same role after the transition (Started, FAILED, or in a transitional role
counting as Started) as crm_simulate shows. The allocation scores (``Placement.totals``, clone
instances by their ``id:N``) are compared with the case's ``scores/`` file too.

Run as a script with case names to see the differences and scores of single cases:
``python tests/compat/test_crm_placement_corpus.py CASE...``.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree

from hastack.crm.cib.model import Cib, Clone, Group, parse_score
from hastack.crm.cib.xml import read_cib
from hastack.crm.placement import PlacementUnsupported, place
from hastack.crm.rules import parse_iso8601
from hastack.crm.state import resource_states

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "pacemaker-scheduler"

# Measured on the 2.1.5 corpus (323 cases compared): the final placement agrees in 322 (99.7%),
# every primitive's allocation scores in 323 (100%). The floors keep them from regressing.
MIN_AGREEMENT = 0.985
MIN_SCORE_AGREEMENT = 0.99

_EXCLUDED = ("bundle", "remote", "guest", "container", "clone", "promotable", "ticket")
_CLONE_WORDS = ("clone", "promotable")
# crm_simulate's words for a resource that is (or will be) active on the node that follows.
_ACTIVE = {"Started", "FAILED", "Starting", "Stopping", "Migrating", "Promoted", "Unpromoted"}
_LINE = re.compile(r"\s*\* (\S+)\t\(([^)]*)\):\t (.*)")
_CLONE = re.compile(r"\s*\* Clone Set: (\S+) \[(\S+)\].*:")
_AGGREGATE = re.compile(r"\s*\* (\w+)(?: \([^)]*\))?: \[ (.*) \]")
# the role each of crm_simulate's words leaves a resource in
_ROLE = {"Promoted": "Promoted", "Unpromoted": "Unpromoted", "Started": "Started"}
_ROLE.update({w: "Started" for w in ("FAILED", "Starting", "Stopping", "Migrating")})


def _cases() -> list[str]:
    rows = csv.reader((CORPUS / "features-2.1.5.csv").read_text().splitlines())
    next(rows)
    return [
        name
        for name, features in rows
        if not any(word in features for word in _EXCLUDED)
        and (CORPUS / "xml" / f"{name}.xml").exists()
    ]


def _clone_cases() -> list[str]:
    """The cases with clones or promotable clones, without bundles, remote or guest nodes
    and tickets (the features place() still refuses)."""
    rows = csv.reader((CORPUS / "features-2.1.5.csv").read_text().splitlines())
    next(rows)
    return [
        name
        for name, features in rows
        if ("clone" in features or "promotable" in features)
        and not any(word in features for word in _EXCLUDED if word not in _CLONE_WORDS)
        and (CORPUS / "xml" / f"{name}.xml").exists()
    ]


def _ticket_cases() -> list[str]:
    """The cases with tickets (with or without clones), without bundles, remote or guest
    nodes."""
    rows = csv.reader((CORPUS / "features-2.1.5.csv").read_text().splitlines())
    next(rows)
    return [
        name
        for name, features in rows
        if "ticket" in features
        and not any(word in features for word in ("bundle", "remote", "guest", "container"))
        and (CORPUS / "xml" / f"{name}.xml").exists()
    ]


def _members(cib: Cib) -> dict[str, tuple[str, ...]]:
    """A cloned group's id -> its members' ids (what a clone set's summary line stands for)."""
    return {
        r.child.id: tuple(m.id for m in r.child.children)
        for r in cib.resources
        if isinstance(r, Clone) and isinstance(r.child, Group)
    }


def parse_revised_roles(
    text: str, members: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, dict[str, str]]:
    """Resource -> node -> role ("Started", "Promoted", "Unpromoted") as the summary's
    "Revised Cluster Status" shows it. Inside a "Clone Set: X [Y]" block the aggregate lines
    ("Started: [ n1 n2 ]", "Promoted: [ ... ]") count for every primitive of Y (``members``
    maps a cloned group's id to its members' ids), and the instance lines printed one by one
    (``P:0`` of a globally-unique clone, or an anonymous clone's ``P``) add to that name."""
    section = text.split("Revised Cluster Status:", 1)[1]
    out: dict[str, dict[str, str]] = {}
    clone_indent: int | None = None
    clone_prims: tuple[str, ...] = ()
    for raw in section.splitlines():
        indent = len(raw) - len(raw.lstrip())
        if clone_indent is not None and indent <= clone_indent:
            clone_indent = None
        head = _CLONE.fullmatch(raw)
        if head:
            clone_indent = indent
            inner = head.group(2)
            clone_prims = tuple(members.get(inner, (inner,))) if members else (inner,)
            for prim in clone_prims:
                out.setdefault(prim, {})
            continue
        if clone_indent is not None:
            agg = _AGGREGATE.fullmatch(raw)
            if agg:
                role = _ROLE.get(agg.group(1))
                if role is not None:
                    for prim in clone_prims:
                        for node in agg.group(2).split():
                            out.setdefault(prim, {})[node] = role
                continue
        m = _LINE.fullmatch(raw)
        if not m:
            continue
        # Flags such as "(disabled, blocked)" or "(UNCLEAN)" say nothing about where it runs.
        name, rest = m.group(1), re.sub(r"\([^)]*\)", " ", m.group(3)).split()
        if rest and rest[0] == "ORPHANED":
            continue
        nodes: dict[str, str] = {}
        if rest and rest[0] in _ACTIVE:
            role = _ROLE.get(rest[0], "Started")
            after = rest[1:]
            if after and after[0] in _ROLE:  # "FAILED Promoted node"
                role = _ROLE[after[0]]
                after = after[1:]
            if after and after[0] == "[":
                nodes = {n: role for n in after[1 : after.index("]")]}
            elif after:
                nodes = {after[0]: role}
        if clone_indent is not None:
            out.setdefault(name, {}).update(nodes)  # one instance among others
        else:
            out[name] = nodes
    return out


def parse_revised(
    text: str, members: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, set[str]]:
    """Primitive id -> the nodes the summary's "Revised Cluster Status" shows it active on."""
    return {rsc: set(nodes) for rsc, nodes in parse_revised_roles(text, members).items()}


def _run_time(name: str, has_execution_date: bool) -> float | None:
    """When crm_simulate ran the case: the date the test list gives it (``-t``), else the
    CIB's execution-date (None), else now."""
    listing = CORPUS / "tests-2.1.5.json"
    if listing.exists():
        for entry in json.loads(listing.read_text()):
            if entry[0] == name and len(entry) > 2 and "-t" in entry[2]:
                when = entry[2][entry[2].index("-t") + 1]
                return parse_iso8601(when).timestamp()
    return None if has_execution_date else time.time()


_SCORE_LINE = re.compile(r"pcmk__primitive_assign: (\S+) allocation score on (\S+): (\S+)")


def parse_scores(text: str) -> dict[str, dict[str, int]]:
    """Primitive -> node -> the allocation score a scores file shows (pcmk__primitive_assign
    lines: the score each primitive was assigned with)."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        m = _SCORE_LINE.match(line)
        if m:
            rsc, node, value = m.groups()
            out.setdefault(rsc, {})[node] = parse_score(value)
    return out


def compare(name: str, verbose: bool = False) -> tuple[list[str], list[str]] | None:
    """The placement differences and the allocation-score differences for one case (empty
    lists when it agrees), or None when the case is out of scope."""
    cib = read_cib(CORPUS / "xml" / f"{name}.xml")
    text = (CORPUS / "summary" / f"{name}.summary").read_text()
    now = _run_time(name, "execution-date" in cib.extra)
    try:
        result = place(cib, resource_states(cib, now=now), now=now)
    except PlacementUnsupported:
        return None
    theirs = parse_revised_roles(text, _members(cib))
    problems = []
    for rsc in sorted(result.final):
        mine = dict(result.roles.get(rsc, {}))
        expected = theirs.get(rsc, {})
        if mine != expected:
            why = result.reasons.get(rsc, "")
            problems.append(
                f"{rsc}: expected {sorted(expected.items())}, got {sorted(mine.items())} {why}"
            )
    score_problems = []
    scores = parse_scores((CORPUS / "scores" / f"{name}.scores").read_text())
    for rsc, table in sorted(scores.items()):
        for node, value in sorted(table.items()):
            mine_score = result.totals.get(rsc, {}).get(node)
            if mine_score != value:
                score_problems.append(f"{rsc} on {node}: expected {value}, got {mine_score}")
    if verbose:
        print("order:", " ".join(result.order))
        for rsc, totals in result.totals.items():
            print(rsc, totals, "->", result.assigned.get(rsc), result.reasons.get(rsc, ""))
    return problems, score_problems


def _agreement(cases: list[str], label: str) -> tuple[float, float]:
    """Compare the cases, print the agreement and every difference; the two rates."""
    compared = 0
    placed: dict[str, list[str]] = {}
    scored: dict[str, list[str]] = {}
    for name in cases:
        found = compare(name)
        if found is None:
            continue
        compared += 1
        if found[0]:
            placed[name] = found[0]
        if found[1]:
            scored[name] = found[1]
    place_rate = (compared - len(placed)) / compared
    score_rate = (compared - len(scored)) / compared
    print(f"{label} final-placement agreement: {compared - len(placed)}/{compared}", end="")
    print(f" = {place_rate:.1%}")
    for name, problems in sorted(placed.items()):
        print(f"  {name}: {'; '.join(problems[:3])}")
    print(f"{label} allocation-score agreement: {compared - len(scored)}/{compared}", end="")
    print(f" = {score_rate:.1%}")
    for name, problems in sorted(scored.items()):
        print(f"  {name}: {'; '.join(problems[:3])}")
    return place_rate, score_rate


# Measured on the 2.1.5 corpus's cases with clones and promotable clones (268 compared): the
# final placement and roles agree in 261 (97.4%), the allocation scores of every primitive and
# instance in 252 (94.0%; 239 before instances were ordered as pcmk__cmp_instance does: most
# differences left are which instance number goes to which node).
# Known placement differences: crm_simulate hides a clone whose instance failed to stop on an
# unclean node (stop-failure-no-fencing, stop-failure-no-quorum); its simulated history leaves
# a moved instance on both nodes (inc6) or a pending start started (764); and utilization
# placement with clones (load-stopped-loop, load-stopped-loop-2, params-6).
MIN_CLONE_AGREEMENT = 0.95
MIN_CLONE_SCORE_AGREEMENT = 0.92


def _need_corpus() -> None:
    if not (CORPUS / "xml").is_dir():
        msg = f"corpus not found at {CORPUS}; skipping the crm_simulate comparison"
        print(msg)
        pytest.skip(msg)


def test_clone_placement_and_scores_agreement() -> None:
    _need_corpus()
    # (the cases without clones are test_final_placement_and_scores_agreement's)
    place_rate, score_rate = _agreement(_clone_cases(), "with clones:")
    assert place_rate >= MIN_CLONE_AGREEMENT
    assert score_rate >= MIN_CLONE_SCORE_AGREEMENT


# Measured on the 2.1.5 corpus's cases with tickets (115, clones and promotable clones among
# them): the final placement agrees in 115 (100%), the allocation scores in 115 (100%; 113
# before instances were ordered as pcmk__cmp_instance does).
MIN_TICKET_AGREEMENT = 0.98
MIN_TICKET_SCORE_AGREEMENT = 0.97


def test_ticket_placement_and_scores_agreement() -> None:
    _need_corpus()
    place_rate, score_rate = _agreement(_ticket_cases(), "with tickets:")
    assert place_rate >= MIN_TICKET_AGREEMENT
    assert score_rate >= MIN_TICKET_SCORE_AGREEMENT


def test_final_placement_and_scores_agreement() -> None:
    _need_corpus()
    place_rate, score_rate = _agreement(_cases(), "without clones:")
    assert place_rate >= MIN_AGREEMENT
    assert score_rate >= MIN_SCORE_AGREEMENT


# --- generated CIBs, run through crm_simulate -----------------------------------------------

# Measured on 300 CIBs drawn by hypothesis (2-6 nodes, 1-15 primitives): 199 of the 199
# crm_simulate could simulate agree (with plain seeded draws of the same generator, 2-5 nodes
# and up to 10 primitives: 280 of 282; the two that differed were a group led by an unmanaged
# member active on two nodes, and a tie between equally free nodes under
# placement-strategy=balanced, which Pacemaker breaks by its hash table's order).
GENERATED_SEEDS = 300
MIN_GENERATED_AGREEMENT = 0.97
_SCORES = ["-INFINITY", "-100", "-10", "0", "10", "50", "100", "INFINITY"]


def generate_cib(seed: int | random.Random) -> str:
    """A random small cluster (2-6 nodes, 1-15 primitives, some in groups) with location
    constraints (plain and rules on node attributes), colocations (some by node attribute),
    orderings, stickiness, disabled, unmanaged and prioritised resources, utilization and a
    placement strategy, standby nodes, lost quorum, and a status section where resources run
    (some on several nodes) and have failed. Deterministic in ``seed`` (a number, or the
    random generator a hypothesis strategy draws: see cib_documents)."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    nodes = [f"node{i}" for i in range(1, rng.randint(2, 6) + 1)]
    ids = [f"r{i}" for i in range(rng.randint(1, 15))]
    groups: dict[str, list[str]] = {}
    i = 0
    while i < len(ids):
        if rng.random() < 0.3 and i + 1 < len(ids):
            size = rng.randint(2, min(4, len(ids) - i))
            groups[f"g{len(groups)}"] = ids[i : i + size]
            i += size
        else:
            i += 1
    group_of = {m: g for g, members in groups.items() for m in members}

    def primitive(rid: str) -> str:
        meta = []
        if rng.random() < 0.3:
            meta.append(("resource-stickiness", rng.choice(["0", "50", "100", "INFINITY"])))
        if rng.random() < 0.1:
            meta.append(("target-role", "Stopped"))
        if rng.random() < 0.1:
            meta.append(("priority", str(rng.randint(1, 5))))
        if rng.random() < 0.1:
            meta.append(("is-managed", "false"))
        pairs = "".join(
            f'<nvpair id="{rid}-m{j}" name="{k}" value="{v}"/>' for j, (k, v) in enumerate(meta)
        )
        metas = f'<meta_attributes id="{rid}-meta">{pairs}</meta_attributes>' if pairs else ""
        cpu = rng.randint(0, 3)
        return (
            f'<primitive id="{rid}" class="ocf" provider="pacemaker" type="Dummy">{metas}'
            f'<utilization id="{rid}-u"><nvpair id="{rid}-uc" name="cpu" value="{cpu}"/>'
            f'</utilization><operations><op id="{rid}-mon" name="monitor" interval="10s"/>'
            "</operations></primitive>"
        )

    resources = []
    for rid in ids:
        group = group_of.get(rid)
        if group is None:
            resources.append(primitive(rid))
        elif groups[group][0] == rid:
            members = "".join(primitive(m) for m in groups[group])
            resources.append(f'<group id="{group}">{members}</group>')
    tops = [r for r in ids if r not in group_of] + list(groups)

    def family(rid: str) -> set[str]:
        return {rid, *groups.get(rid, []), *([group_of[rid]] if rid in group_of else [])}

    cons = []
    for j in range(rng.randint(0, 6)):
        rsc, node, score = rng.choice(tops + ids), rng.choice(nodes), rng.choice(_SCORES)
        cons.append(f'<rsc_location id="l{j}" rsc="{rsc}" node="{node}" score="{score}"/>')
    for j in range(rng.randint(0, 4)):
        if len(tops + ids) < 2:
            break
        a, b = rng.sample(tops + ids, 2)
        # (colocations inside one group, or of a group with its members, are left out: they
        # make loops that crm_simulate resolves arbitrarily)
        if not family(a) & family(b) and not (a in group_of and b in group_of):
            attr = ' node-attribute="rack"' if rng.random() < 0.2 else ""
            score = rng.choice(_SCORES)
            cons.append(
                f'<rsc_colocation id="c{j}" rsc="{a}" with-rsc="{b}" score="{score}"{attr}/>'
            )
    for j in range(rng.randint(0, 2)):
        rsc = rng.choice(tops + ids)
        if rng.random() < 0.5:
            value = rng.choice(["a", "b"])
            rule = (
                f'<rule id="rl{j}" score="{rng.choice(_SCORES)}"><expression id="re{j}" '
                f'attribute="rack" operation="eq" value="{value}"/></rule>'
            )
        else:
            rule = (
                f'<rule id="rl{j}" score-attribute="weight"><expression id="re{j}" '
                'attribute="weight" operation="gt" value="10" type="number"/></rule>'
            )
        cons.append(f'<rsc_location id="lr{j}" rsc="{rsc}">{rule}</rsc_location>')
    for j in range(rng.randint(0, 3)):
        if len(tops) > 1:
            a, b = rng.sample(tops, 2)
            kind = rng.choice(["Mandatory", "Optional", "Mandatory"])
            cons.append(f'<rsc_order id="ord{j}" first="{a}" then="{b}" kind="{kind}"/>')
    options = ['<nvpair id="o1" name="stonith-enabled" value="false"/>']
    if rng.random() < 0.7:
        options.append('<nvpair id="o2" name="no-quorum-policy" value="ignore"/>')
    if rng.random() < 0.2:
        options.append('<nvpair id="o3" name="symmetric-cluster" value="false"/>')
    if rng.random() < 0.3:
        strategy = rng.choice(["utilization", "balanced", "minimal"])
        options.append(f'<nvpair id="o4" name="placement-strategy" value="{strategy}"/>')
    defaults = ""
    if rng.random() < 0.3:
        stickiness = rng.choice(["10", "100", "INFINITY"])
        defaults = (
            '<rsc_defaults><meta_attributes id="rd"><nvpair id="rd1" '
            f'name="resource-stickiness" value="{stickiness}"/></meta_attributes></rsc_defaults>'
        )
    node_xml = status = ""
    op = (
        '<lrm_resource id="{r}" class="ocf" provider="pacemaker" type="Dummy">'
        '<lrm_rsc_op id="{r}_last_0" operation_key="{r}_start_0" operation="start" '
        'crm-debug-origin="x" crm_feature_set="3.2.0" '
        'transition-key="1:1:0:6f6f6f6f-6f6f-6f6f-6f6f-6f6f6f6f6f6f" '
        'transition-magic="0:0;1:1:0:6f6f6f6f-6f6f-6f6f-6f6f-6f6f6f6f6f6f" call-id="{call}" '
        'rc-code="0" op-status="0" interval="0" last-run="1000" last-rc-change="1000" '
        'exec-time="1" queue-time="0" op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8"/>'
        "</lrm_resource>"
    )
    for k, name in enumerate(nodes, 1):
        attrs = ""
        if rng.random() < 0.15:
            attrs += f'<nvpair id="na{k}s" name="standby" value="on"/>'
        attrs += f'<nvpair id="na{k}r" name="rack" value="{rng.choice(["a", "b"])}"/>'
        attrs += f'<nvpair id="na{k}w" name="weight" value="{rng.choice(["5", "50", "500"])}"/>'
        cpu = rng.randint(1, 6)
        node_xml += (
            f'<node id="{k}" uname="{name}"><instance_attributes id="na{k}">{attrs}'
            f'</instance_attributes><utilization id="nu{k}"><nvpair id="nu{k}c" name="cpu" '
            f'value="{cpu}"/></utilization></node>'
        )
        up = rng.random() < 0.9
        state = (
            'in_ccm="true" crmd="online" join="member" expected="member"'
            if up
            else 'in_ccm="false" crmd="offline" join="down" expected="down"'
        )
        lrm = transient = ""
        if up:
            for rid in ids:
                x = rng.random()
                if x < 0.15:
                    lrm += op.format(r=rid, call=10 + k)
                elif x < 0.2:
                    count = rng.choice(["1", "3", "INFINITY"])
                    transient += (
                        f'<nvpair id="fc-{rid}-{k}" name="fail-count-{rid}#monitor_10000" '
                        f'value="{count}"/>'
                    )
            if transient:
                transient = (
                    f'<transient_attributes id="{k}"><instance_attributes id="st{k}">'
                    f"{transient}</instance_attributes></transient_attributes>"
                )
        status += (
            f'<node_state id="{k}" uname="{name}" {state} crm-debug-origin="x">{transient}'
            f'<lrm id="{k}"><lrm_resources>{lrm}</lrm_resources></lrm></node_state>'
        )
    quorum = 1 if rng.random() < 0.9 else 0
    return (
        '<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.7" '
        f'crm_feature_set="3.2.0" have-quorum="{quorum}" dc-uuid="1" execution-date="2000">'
        '<configuration><crm_config><cluster_property_set id="cib-bootstrap-options">'
        f"{''.join(options)}</cluster_property_set></crm_config><nodes>{node_xml}</nodes>"
        f"<resources>{''.join(resources)}</resources><constraints>{''.join(cons)}"
        f"</constraints>{defaults}</configuration><status>{status}</status></cib>"
    )


def _name(seed: int | random.Random) -> str:
    return str(seed) if isinstance(seed, int) else f"h{id(seed)}"


def _crm_simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["crm_simulate", *args],
        capture_output=True,
        text=True,
        env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        timeout=60,
        check=False,
    )


def _simulated(path: Path, saved: Path | None = None) -> str | None:
    """crm_simulate -S's summary of one CIB file (and its CIB after the simulated transition
    written to ``saved``); None when its own simulated transition fails (then there is
    nothing to compare)."""
    out = _crm_simulate("-x", str(path), "-S", *(["-O", str(saved)] if saved else []))
    text = out.stdout + out.stderr
    if "Revised Cluster Status" not in out.stdout or "Transition failed" in text:
        return None
    return out.stdout


def _simulated_without_cancels(path: Path) -> str | None:
    """Like _simulated, but the revised status is crm_simulate's status of its own resulting
    CIB once the "cancel" entries its simulation writes into the operation history are taken
    out. A real cluster never records a cancel there (the controller deletes the recurring
    operation instead); crm_simulate records one, successful and newest, when it cancels a
    failed recurring monitor, and that entry makes an instance it stopped look running still
    (a recovered instance then shows on two nodes). The plan is crm_simulate's unchanged."""
    saved = path.with_suffix(".out.xml")
    if _simulated(path, saved) is None:
        return None
    root = etree.parse(str(saved)).getroot()
    for op in list(root.iter("lrm_rsc_op")):
        if op.get("operation") == "cancel":
            op.getparent().remove(op)
    cleaned = path.with_suffix(".nocancel.xml")
    cleaned.write_bytes(etree.tostring(root))
    out = _crm_simulate("-x", str(cleaned))
    if "Current cluster status:" not in out.stdout:
        return None
    return out.stdout.replace("Current cluster status:", "Revised Cluster Status:", 1)


def compare_generated(seed: int | random.Random, workdir: Path) -> list[str] | None:
    """Differences between place() and crm_simulate on one generated CIB; None when
    crm_simulate could not complete the transition (then there is nothing to compare)."""
    path = workdir / f"generated-{_name(seed)}.xml"
    path.write_text(generate_cib(seed))
    summary = _simulated(path)
    if summary is None:
        return None
    theirs = parse_revised(summary)
    cib = read_cib(path)
    result = place(cib, resource_states(cib))
    return [
        f"{path.name}: {rsc}: expected {sorted(theirs.get(rsc, set()))}, got {list(nodes)}"
        for rsc, nodes in sorted(result.final.items())
        if set(nodes) != theirs.get(rsc, set())
    ]


def _generated_agreement(
    compare: Callable[[random.Random, Path], list[str] | None],
    examples: int,
    what: str,
    workdir: Path,
) -> float:
    """Draw `examples` CIBs with a hypothesis strategy (a generator hypothesis controls, fed
    to the CIB generator; derandomized, so every run compares the same CIBs), run
    crm_simulate and place() on each, print the agreement and return it. The CIBs that
    differ are kept in `workdir` to look at."""
    if shutil.which("crm_simulate") is None:
        msg = "crm_simulate not installed; skipping the generated-CIB comparison"
        print(msg)
        pytest.skip(msg)
    outcomes: list[list[str] | None] = []

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.randoms(use_true_random=False))
    def draw(rng: random.Random) -> None:
        outcomes.append(compare(rng, workdir))

    draw()
    compared = [o for o in outcomes if o is not None]
    failures = [o for o in compared if o]
    rate = (len(compared) - len(failures)) / len(compared)
    print(f"{what} agreement: {len(compared) - len(failures)}/{len(compared)} = {rate:.1%}")
    for problems in failures:
        print(f"  {'; '.join(problems[:3])}")
    return rate


def test_generated_cibs_agree_with_crm_simulate(tmp_path: Path) -> None:
    rate = _generated_agreement(compare_generated, GENERATED_SEEDS, "generated-CIB", tmp_path)
    assert rate >= MIN_GENERATED_AGREEMENT


# --- generated CIBs with clones ----------------------------------------------------------

# Measured on 200 CIBs drawn by hypothesis (2-6 nodes): all 199 that crm_simulate could
# simulate agree (100%), and 282 of 283 plain seeded draws of the same generator. The
# comparison is with crm_simulate's status of its own resulting CIB, less the "cancel" entries
# its simulation injects into the history (see _simulated_without_cancels); against its raw
# "Revised Cluster Status" 160 of the 199 agree, every one of the 39 others that artifact
# (a stopped or moved instance shown running where it was). Before the instance order, the
# order of a clone's colocations on its instances, promoted roles on a shared node, group
# re-promotion and clone-with-clone blocking were fixed: 173 of 199.
GENERATED_CLONE_SEEDS = 200
MIN_GENERATED_CLONE_AGREEMENT = 0.97
_UUID = "6f6f6f6f-6f6f-6f6f-6f6f-6f6f6f6f6f6f"


def generate_clone_cib(seed: int | random.Random) -> str:
    """A random small cluster (2-6 nodes) with 1-3 clones (anonymous, globally unique or
    promotable; of a primitive or of a group; clone-max, clone-node-max, promoted-max,
    interleave), 0-3 primitives, location constraints on clones (some for the promoted role),
    colocations of primitives with clones (some with the promoted role) and of clones with
    primitives and clones, mandatory orders between them (some after a promotion), and a
    status section where instances run (some promoted, some failed) with promotion scores.
    Deterministic in ``seed`` (a number, or a hypothesis-drawn generator)."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    nodes = [f"node{i}" for i in range(1, rng.randint(2, 6) + 1)]
    prims = [f"p{i}" for i in range(rng.randint(0, 3))]
    clones: list[tuple[str, list[str], bool, bool]] = []  # id, primitives, promotable, unique
    resources = [
        f'<primitive id="{p}" class="ocf" provider="pacemaker" type="Dummy"/>' for p in prims
    ]
    for c in range(rng.randint(1, 3)):
        promotable = rng.random() < 0.4
        unique = not promotable and rng.random() < 0.25
        members = [f"c{c}m{j}" for j in range(rng.randint(1, 2) if rng.random() < 0.3 else 1)]
        agent = "Stateful" if promotable else "Dummy"
        inner = "".join(
            f'<primitive id="{m}" class="ocf" provider="pacemaker" type="{agent}"/>'
            for m in members
        )
        if len(members) > 1:
            inner = f'<group id="c{c}g">{inner}</group>'
        meta = []
        if promotable:
            meta.append(("promotable", "true"))
            if rng.random() < 0.3:
                meta.append(("promoted-max", str(rng.randint(1, 2))))
        if unique:
            meta.append(("globally-unique", "true"))
            meta.append(("clone-node-max", str(rng.randint(1, 2))))
        if rng.random() < 0.4:
            meta.append(("clone-max", str(rng.randint(1, len(nodes) + 1))))
        if rng.random() < 0.4:
            meta.append(("interleave", "true"))
        if rng.random() < 0.1:
            meta.append(("target-role", "Stopped"))
        pairs = "".join(
            f'<nvpair id="cl{c}-m{k}" name="{n}" value="{v}"/>' for k, (n, v) in enumerate(meta)
        )
        resources.append(
            f'<clone id="cl{c}"><meta_attributes id="cl{c}-meta">{pairs}</meta_attributes>'
            f"{inner}</clone>"
        )
        clones.append((f"cl{c}", members, promotable, unique))
    cons = []
    tops = prims + [c[0] for c in clones]
    for j in range(rng.randint(0, 4)):
        rsc, node, score = rng.choice(tops), rng.choice(nodes), rng.choice(_SCORES)
        role = ""
        promotables = [c[0] for c in clones if c[2]]
        if promotables and rng.random() < 0.3:
            rsc, role = rng.choice(promotables), ' role="Master"'
        if role:
            cons.append(
                f'<rsc_location id="l{j}" rsc="{rsc}"><rule id="l{j}r" score="{score}"{role}>'
                f'<expression id="l{j}e" attribute="#uname" operation="eq" value="{node}"/>'
                "</rule></rsc_location>"
            )
        else:
            cons.append(f'<rsc_location id="l{j}" rsc="{rsc}" node="{node}" score="{score}"/>')
    for j in range(rng.randint(0, 3)):
        if len(tops) < 2:
            break
        a, b = rng.sample(tops, 2)
        roles = ""
        if any(c[0] == b and c[2] for c in clones) and rng.random() < 0.5:
            roles = ' with-rsc-role="Master"'
        score = rng.choice(["INFINITY", "INFINITY", "100", "-INFINITY"])
        cons.append(f'<rsc_colocation id="c{j}" rsc="{a}" with-rsc="{b}" score="{score}"{roles}/>')
    for j in range(rng.randint(0, 2)):
        if len(tops) < 2:
            break
        a, b = rng.sample(tops, 2)
        action = ""
        if any(c[0] == a and c[2] for c in clones) and rng.random() < 0.5:
            action = ' first-action="promote" then-action="start"'
        cons.append(f'<rsc_order id="ord{j}" first="{a}" then="{b}"{action}/>')
    options = (
        '<nvpair id="o1" name="stonith-enabled" value="false"/>'
        '<nvpair id="o2" name="no-quorum-policy" value="ignore"/>'
    )
    node_xml = status = ""
    for k, name in enumerate(nodes, 1):
        node_xml += f'<node id="{k}" uname="{name}"/>'
        lrm = transient = ""
        call = 10
        for _cid, members, promotable, unique in clones:
            running = rng.random() < 0.6
            promoted = promotable and running and rng.random() < 0.3
            for n, m in enumerate(members):
                rid = f"{m}:{k - 1}" if unique else m
                if promotable:
                    score = rng.choice(["5", "10", "100", None])
                    if score is not None:
                        transient += f'<nvpair id="ms-{m}-{k}" name="master-{m}" value="{score}"/>'
                if not running or (n > 0 and rng.random() < 0.2):
                    continue
                ops = [("start", 0)]
                if promoted:
                    ops.append(("promote", 0))
                failed = rng.random() < 0.1
                if failed:
                    ops.append(("monitor", 1))
                body = ""
                for op, rc in ops:
                    call += 1
                    interval = "10000" if op == "monitor" else "0"
                    key = f"{rid}_{op}_{interval}"
                    body += (
                        f'<lrm_rsc_op id="{key}" operation_key="{key}" operation="{op}" '
                        'crm-debug-origin="x" crm_feature_set="3.2.0" '
                        f'transition-key="{call}:1:0:{_UUID}" '
                        f'transition-magic="0:{rc};{call}:1:0:{_UUID}" '
                        f'call-id="{call}" rc-code="{rc}" op-status="0" interval="{interval}" '
                        'last-run="1000" last-rc-change="1000" exec-time="1" queue-time="0" '
                        'op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8"/>'
                    )
                agent = "Stateful" if promotable else "Dummy"
                lrm += (
                    f'<lrm_resource id="{rid}" class="ocf" provider="pacemaker" '
                    f'type="{agent}">{body}</lrm_resource>'
                )
        if transient:
            transient = (
                f'<transient_attributes id="{k}"><instance_attributes id="st{k}">'
                f"{transient}</instance_attributes></transient_attributes>"
            )
        status += (
            f'<node_state id="{k}" uname="{name}" in_ccm="true" crmd="online" join="member" '
            f'expected="member" crm-debug-origin="x">{transient}'
            f'<lrm id="{k}"><lrm_resources>{lrm}</lrm_resources></lrm></node_state>'
        )
    return (
        '<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.7" '
        'crm_feature_set="3.2.0" have-quorum="1" dc-uuid="1" execution-date="2000">'
        '<configuration><crm_config><cluster_property_set id="cib-bootstrap-options">'
        f"{options}</cluster_property_set></crm_config><nodes>{node_xml}</nodes>"
        f"<resources>{''.join(resources)}</resources><constraints>{''.join(cons)}"
        f"</constraints></configuration><status>{status}</status></cib>"
    )


def compare_generated_clones(seed: int | random.Random, workdir: Path) -> list[str] | None:
    """Differences (nodes and roles) between place() and crm_simulate on one generated CIB
    with clones; None when crm_simulate could not complete the transition."""
    path = workdir / f"generated-clones-{_name(seed)}.xml"
    path.write_text(generate_clone_cib(seed))
    summary = _simulated_without_cancels(path)
    if summary is None:
        return None
    cib = read_cib(path)
    theirs = parse_revised_roles(summary, _members(cib))
    result = place(cib, resource_states(cib))
    return [
        f"{path.name}: {rsc}: expected {sorted(theirs.get(rsc, {}).items())}, "
        f"got {sorted(roles.items())}"
        for rsc, roles in sorted(result.roles.items())
        if dict(roles) != theirs.get(rsc, {})
    ]


def test_generated_clone_cibs_agree_with_crm_simulate(tmp_path: Path) -> None:
    rate = _generated_agreement(
        compare_generated_clones, GENERATED_CLONE_SEEDS, "generated clone-CIB", tmp_path
    )
    assert rate >= MIN_GENERATED_CLONE_AGREEMENT


if __name__ == "__main__":
    for case in sys.argv[1:]:
        print(case, compare(case, verbose=True))
