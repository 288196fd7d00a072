"""Compare place() with crm_simulate's "Revised Cluster Status" on Pacemaker's corpus.

Only the cases within placement's scope are compared: no clones, promotable clones, bundles,
remote or guest nodes, tickets (the cases whose features list none of them, and whose CIB
place() does not refuse). A case agrees when every configured primitive is active on the same
nodes after the transition (Started, FAILED, or in a transitional role) as crm_simulate shows.
The allocation scores (``Placement.totals``) are compared with the case's ``scores/`` file too.

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
from pathlib import Path

import pytest

from hastack.crm.cib.model import parse_score
from hastack.crm.cib.xml import read_cib
from hastack.crm.placement import PlacementUnsupported, place
from hastack.crm.rules import parse_iso8601
from hastack.crm.state import resource_states

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "pacemaker-scheduler"

# Measured on the 2.1.5 corpus (323 cases compared): the final placement agrees in 321 (99.4%),
# every primitive's allocation scores in 323 (100%). The floors keep them from regressing.
MIN_AGREEMENT = 0.985
MIN_SCORE_AGREEMENT = 0.99

_EXCLUDED = ("bundle", "remote", "guest", "container", "clone", "promotable", "ticket")
# crm_simulate's words for a resource that is (or will be) active on the node that follows.
_ACTIVE = {"Started", "FAILED", "Starting", "Stopping", "Migrating", "Promoted", "Unpromoted"}
_LINE = re.compile(r"\s*\* (\S+)\t\(([^)]*)\):\t (.*)")


def _cases() -> list[str]:
    rows = csv.reader((CORPUS / "features-2.1.5.csv").read_text().splitlines())
    next(rows)
    return [
        name
        for name, features in rows
        if not any(word in features for word in _EXCLUDED)
        and (CORPUS / "xml" / f"{name}.xml").exists()
    ]


def parse_revised(text: str) -> dict[str, set[str]]:
    """Primitive id -> the nodes the summary's "Revised Cluster Status" shows it active on."""
    section = text.split("Revised Cluster Status:", 1)[1]
    out: dict[str, set[str]] = {}
    for raw in section.splitlines():
        m = _LINE.fullmatch(raw)
        if not m:
            continue
        # Flags such as "(disabled, blocked)" or "(UNCLEAN)" say nothing about where it runs.
        name, rest = m.group(1), re.sub(r"\([^)]*\)", " ", m.group(3)).split()
        if rest and rest[0] == "ORPHANED":
            continue
        nodes: set[str] = set()
        if rest and rest[0] in _ACTIVE:
            after = rest[1:]
            if after and after[0] == "[":
                nodes = set(after[1 : after.index("]")])
            elif after:
                nodes = {after[0]}
        out[name] = nodes
    return out


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
    theirs = parse_revised(text)
    problems = []
    for rsc in sorted(result.final):
        mine = set(result.final[rsc])
        expected = theirs.get(rsc, set())
        if mine != expected:
            why = result.reasons.get(rsc, "")
            problems.append(f"{rsc}: expected {sorted(expected)}, got {sorted(mine)} {why}")
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
            print(rsc, totals, "->", result.assigned[rsc], result.reasons.get(rsc, ""))
    return problems, score_problems


def test_final_placement_and_scores_agreement() -> None:
    if not (CORPUS / "xml").is_dir():
        msg = f"corpus not found at {CORPUS}; skipping the crm_simulate comparison"
        print(msg)
        pytest.skip(msg)
    compared = 0
    placed: dict[str, list[str]] = {}
    scored: dict[str, list[str]] = {}
    for name in _cases():
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
    print(f"final-placement agreement: {compared - len(placed)}/{compared} = {place_rate:.1%}")
    for name, problems in sorted(placed.items()):
        print(f"  {name}: {'; '.join(problems[:3])}")
    print(f"allocation-score agreement: {compared - len(scored)}/{compared} = {score_rate:.1%}")
    for name, problems in sorted(scored.items()):
        print(f"  {name}: {'; '.join(problems[:3])}")
    assert place_rate >= MIN_AGREEMENT
    assert score_rate >= MIN_SCORE_AGREEMENT


# --- generated CIBs, run through crm_simulate -----------------------------------------------

# Measured on seeds 0-299: 280 of 282 comparable CIBs agree (99.3%; 18 are left out because
# crm_simulate's own simulated transition fails). The two that differ: a group led by an
# unmanaged member active on two nodes (seed 60), and a tie between equally free nodes under
# placement-strategy=balanced (seed 107), which Pacemaker breaks by its hash table's order.
GENERATED_SEEDS = 300
MIN_GENERATED_AGREEMENT = 0.97
_SCORES = ["-INFINITY", "-100", "-10", "0", "10", "50", "100", "INFINITY"]


def generate_cib(seed: int) -> str:
    """A random small cluster (2-5 nodes, 1-10 primitives, some in groups) with location
    constraints (plain and rules on node attributes), colocations (some by node attribute),
    orderings, stickiness, disabled, unmanaged and prioritised resources, utilization and a
    placement strategy, standby nodes, lost quorum, and a status section where resources run
    (some on several nodes) and have failed. Deterministic in ``seed``."""
    rng = random.Random(seed)
    nodes = [f"node{i}" for i in range(1, rng.randint(2, 5) + 1)]
    ids = [f"r{i}" for i in range(rng.randint(1, 10))]
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


def compare_generated(seed: int, workdir: Path) -> list[str] | None:
    """Differences between place() and crm_simulate on one generated CIB; None when
    crm_simulate could not complete the transition (then there is nothing to compare)."""
    path = workdir / f"generated-{seed}.xml"
    path.write_text(generate_cib(seed))
    out = subprocess.run(
        ["crm_simulate", "-x", str(path), "-S"],
        capture_output=True,
        text=True,
        env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        timeout=60,
        check=False,
    )
    text = out.stdout + out.stderr
    if "Revised Cluster Status" not in out.stdout or "Transition failed" in text:
        return None
    theirs = parse_revised(out.stdout)
    cib = read_cib(path)
    result = place(cib, resource_states(cib))
    return [
        f"{rsc}: expected {sorted(theirs.get(rsc, set()))}, got {list(nodes)}"
        for rsc, nodes in sorted(result.final.items())
        if set(nodes) != theirs.get(rsc, set())
    ]


def test_generated_cibs_agree_with_crm_simulate(tmp_path: Path) -> None:
    if shutil.which("crm_simulate") is None:
        msg = "crm_simulate not installed; skipping the generated-CIB comparison"
        print(msg)
        pytest.skip(msg)
    compared = 0
    failures: dict[int, list[str]] = {}
    for seed in range(GENERATED_SEEDS):
        problems = compare_generated(seed, tmp_path)
        if problems is None:
            continue
        compared += 1
        if problems:
            failures[seed] = problems
    rate = (compared - len(failures)) / compared
    print(f"generated-CIB agreement: {compared - len(failures)}/{compared} = {rate:.1%}")
    for seed, problems in sorted(failures.items()):
        print(f"  seed {seed}: {'; '.join(problems[:3])}")
    assert rate >= MIN_GENERATED_AGREEMENT


if __name__ == "__main__":
    for case in sys.argv[1:]:
        print(case, compare(case, verbose=True))
