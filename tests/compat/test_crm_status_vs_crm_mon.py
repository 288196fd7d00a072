"""Compare ``hastack status``'s view with Debian's crm_mon 2.1.5 on Pacemaker's scheduler corpus.

For every input of ../shared/pacemaker-scheduler/xml, ``CIB_file=INPUT crm_mon -1
--output-as=xml`` is run (two at a time) and compared with :func:`build_view` on the same file
at the same time (crm_mon judges failure expiry against the clock, not execution-date):

- each cluster node's state (online, standby, maintenance, offline, unclean, pending);
- each primitive's active entries: the multiset of (node, role) over all its instances (clone
  instances compared in aggregate, as crm_mon's XML names anonymous instances without their
  number), and whether it is FAILED anywhere;
- the summary's counts (resource instances configured, DISABLED, BLOCKED) and the failed
  actions (operation key, node);
- the text: the lines of "Node List", "Full List of Resources", "Failed Resource Actions",
  "Node Attributes" and "Migration Summary" of ``crm_mon -1 -r -A -f`` (local time on both
  sides, trailing blanks and hastack's ``expires=`` addition left out) against
  :func:`render_text`'s, as multisets (so a line in a different order still agrees).

Cases with bundles, remote or guest nodes are counted apart (hastack does not show the implicit
resources Pacemaker creates for them). The agreement ratio is over every compared item (nodes
and primitives) of the other cases; every disagreement is kept with its category, printed by
``pytest -s`` and by running this file as a program (``python tests/compat/...py``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from hastack.crm.cib.model import CibError
from hastack.crm.cib.xml import read_cib
from hastack.crm.status_view import StatusView, build_view, render_text

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "pacemaker-scheduler"
CRM_MON = shutil.which("crm_mon") or (
    "/usr/sbin/crm_mon" if Path("/usr/sbin/crm_mon").exists() else None
)

# Measured on the 2.1.5 corpus (799 inputs; 718 compared, 81 with bundles, remote or guest
# nodes counted apart), about 20 s with two crm_mon at a time (each case runs it twice):
#   nodes and primitives: 3913 of 3942 items agree (99.26%);
#   summary counts (instances, disabled, blocked) agree in 705 of 718 cases (98.2%);
#   failed actions (operation key, node) agree in 713 of 718 cases (99.3%);
#   text lines: "Node List" 940 of 951 (98.8%), "Full List of Resources" 4798 of 4890 (98.1%),
#   "Failed Resource Actions" 145 of 147 (98.6%), "Node Attributes" 2050 of 2064 (99.3%),
#   "Migration Summary" 205 of 220 (93.2%: crm_mon names an anonymous clone's fail counts
#   after the instance it places on each node).
# The thresholds sit just under those figures so that a regression fails the test.
MIN_AGREEMENT = 0.99
MIN_CASES_COUNTS = 0.975
MIN_CASES_FAILURES = 0.99
MIN_TEXT_NODES = 0.985
MIN_TEXT_RESOURCES = 0.975
MIN_TEXT_FAILED = 0.98
MIN_TEXT_ATTRIBUTES = 0.99
MIN_TEXT_FAILCOUNTS = 0.92

# crm_mon names a resource with a pending action by that action; compare the role it has.
_PENDING_ROLE = {
    "Starting": "Started",
    "Stopping": "Started",
    "Migrating": "Started",
    "Promoting": "Unpromoted",
    "Demoting": "Promoted",
}

Entries = Counter[tuple[str, str]]


@dataclass
class Observed:
    """What one side shows for one case."""

    nodes: dict[str, str] = field(default_factory=dict)
    active: dict[str, Entries] = field(default_factory=dict)
    failed: dict[str, bool] = field(default_factory=dict)
    counts: tuple[int, int, int] = (0, 0, 0)  # resource instances configured, disabled, blocked
    failures: set[tuple[str, str]] = field(default_factory=set)  # (operation key, node)


@dataclass
class Outcome:
    case: str
    compared: int = 0
    agreed: int = 0
    skipped: str | None = None
    differences: list[tuple[str, str]] = field(default_factory=list)  # (category, detail)
    counts_agree: bool = True
    failures_agree: bool = True
    text_lines: dict[str, tuple[int, int]] = field(default_factory=dict)  # agreed, crm_mon's


def _node_state(el: etree._Element) -> str:
    def yes(name: str) -> bool:
        return el.get(name) == "true"

    if yes("unclean"):
        return "unclean"
    if yes("pending"):
        return "pending"
    if not yes("online"):
        return "offline"
    if yes("standby"):
        return "standby"
    if yes("maintenance"):
        return "maintenance"
    return "online"


def parse_crm_mon(xml: bytes) -> Observed:
    root = etree.fromstring(xml)
    out = Observed()
    rc = root.find("summary/resources_configured")
    if rc is not None:
        out.counts = tuple(int(rc.get(k, "0")) for k in ("number", "disabled", "blocked"))  # type: ignore[assignment]
    # old-style histories have no operation_key: crm_mon then names the entry by its id
    out.failures = {
        (f.get("op_key") or f.get("id", ""), f.get("node", "")) for f in root.iter("failure")
    }
    for n in root.iterfind("nodes/node"):
        if n.get("type", "member") == "member":
            out.nodes[n.get("name", "")] = _node_state(n)
    for r in root.iter("resource"):
        base = (r.get("id") or "").partition(":")[0]
        entries = out.active.setdefault(base, Counter())
        role = r.get("role", "Stopped")
        role = _PENDING_ROLE.get(role, role)
        failed = r.get("failed") == "true"
        if r.get("active") != "true" and not failed:
            continue
        for n in r.iterfind("node"):
            entries[(n.get("name", ""), role)] += 1
        out.failed[base] = out.failed.get(base, False) or failed
    return out


def observe_hastack(view: StatusView) -> Observed:
    s = view.summary
    out = Observed(
        counts=(s.resources_configured, s.resources_disabled, s.resources_blocked),
        failures={(f.op_key, f.node) for f in view.failed_actions},
    )
    for n in view.nodes:
        out.nodes[n.name] = n.state if n.state != "shutdown" else "online"
    for i in view.instances():
        base = i.primitive.partition(":")[0]
        entries = out.active.setdefault(base, Counter())
        for node in i.nodes:
            entries[(node, i.role)] += 1
        if i.nodes:
            out.failed[base] = out.failed.get(base, False) or i.failed
    return out


def _category(ours: Entries, theirs: Entries) -> str:
    if not ours and theirs:
        return "active in crm_mon, stopped in hastack"
    if ours and not theirs:
        return "active in hastack, stopped in crm_mon"
    if {n for n, _ in ours} == {n for n, _ in theirs}:
        if sum(ours.values()) != sum(theirs.values()):
            return "instance count differs"
        return "role differs"
    return "node differs"


TEXT_SECTIONS = (
    "Node List:",
    "Full List of Resources:",
    "Failed Resource Actions:",
    "Node Attributes:",
    "Migration Summary:",
)
# hastack adds when failure-timeout forgets a fail count; crm_mon has no such words
_EXPIRES = re.compile(r" expires='[^']*'$")


def section(text: str, heading: str) -> Counter[str]:
    """The lines under ``heading`` up to the next blank line."""
    lines = text.splitlines()
    if heading not in lines:
        return Counter()
    out: Counter[str] = Counter()
    for line in lines[lines.index(heading) + 1 :]:
        if not line.strip():
            break
        out[_EXPIRES.sub("", line.rstrip())] += 1  # crm_mon pads attribute values
    return out


def text_ratio(outcomes: list[Outcome], heading: str) -> float:
    agreed = sum(o.text_lines.get(heading, (0, 0))[0] for o in outcomes)
    total = sum(o.text_lines.get(heading, (0, 0))[1] for o in outcomes)
    return agreed / max(1, total)


def compare(case: str, now: float) -> Outcome:
    path = CORPUS / "xml" / f"{case}.xml"
    out = Outcome(case)
    try:
        cib = read_cib(path)
    except CibError as exc:
        out.skipped = f"unreadable by hastack: {exc.problems[0]}"
        return out
    if cib.has_bundles() or cib.remote_node_names():
        out.skipped = "bundle, remote or guest nodes"
        return out
    env = {**os.environ, "CIB_file": str(path), "LC_ALL": "C"}
    env.pop("CIB_shadow", None)
    assert CRM_MON is not None
    result = subprocess.run(
        [CRM_MON, "-1", "--output-as=xml"], env=env, capture_output=True, timeout=60
    )
    if result.returncode != 0 or not result.stdout:
        out.skipped = f"crm_mon failed (rc {result.returncode})"
        return out
    theirs = parse_crm_mon(result.stdout)
    view = build_view(cib, None, now)
    ours = observe_hastack(view)
    text = subprocess.run(
        [CRM_MON, "-1", "-r", "-A", "-f"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    rendered = render_text(view, attributes=True, failcounts=True)
    for heading in TEXT_SECTIONS:
        mine_lines, their_lines = section(rendered, heading), section(text, heading)
        out.text_lines[heading] = (sum((mine_lines & their_lines).values()), their_lines.total())
        for line in sorted(their_lines - mine_lines):
            out.differences.append((f"text: {heading} line differs", f"{case}: {line.strip()}"))
    for name in sorted(set(theirs.nodes) | set(ours.nodes)):
        out.compared += 1
        a, b = ours.nodes.get(name, "absent"), theirs.nodes.get(name, "absent")
        if a == b:
            out.agreed += 1
        else:
            out.differences.append((f"node state {b} -> {a}", f"{case}: node {name}"))
    for rsc in sorted(set(theirs.active) | set(ours.active)):
        mine, other = ours.active.get(rsc, Counter()), theirs.active.get(rsc, Counter())
        if not mine and not other:
            continue
        out.compared += 1
        ok = True
        if +mine != +other:
            ok = False
            out.differences.append(
                (
                    _category(mine, other),
                    f"{case}: {rsc} hastack {dict(mine)} crm_mon {dict(other)}",
                )
            )
        elif ours.failed.get(rsc, False) != theirs.failed.get(rsc, False):
            ok = False
            out.differences.append(
                (
                    "FAILED flag differs",
                    f"{case}: {rsc} hastack failed={ours.failed.get(rsc, False)}",
                )
            )
        out.agreed += ok
    if ours.counts != theirs.counts:
        out.counts_agree = False
        out.differences.append(
            (
                "summary counts (instances, disabled, blocked) differ",
                f"{case}: hastack {ours.counts} crm_mon {theirs.counts}",
            )
        )
    if ours.failures != theirs.failures:
        out.failures_agree = False
        out.differences.append(
            (
                "failed actions differ",
                f"{case}: only hastack {sorted(ours.failures - theirs.failures)} "
                f"only crm_mon {sorted(theirs.failures - ours.failures)}",
            )
        )
    return out


def cases() -> list[str]:
    return sorted(p.stem for p in (CORPUS / "xml").glob("*.xml"))


def run_all() -> tuple[list[Outcome], float]:
    started = time.monotonic()
    now = time.time()
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda c: compare(c, now), cases()))
    return outcomes, time.monotonic() - started


def case_ratio(outcomes: list[Outcome], attribute: str) -> float:
    """The share of compared cases whose ``attribute`` (counts_agree, failures_agree) holds."""
    compared = [o for o in outcomes if not o.skipped]
    return sum(1 for o in compared if getattr(o, attribute)) / max(1, len(compared))


def report(outcomes: list[Outcome], seconds: float) -> tuple[float, str]:
    compared = sum(o.compared for o in outcomes)
    agreed = sum(o.agreed for o in outcomes)
    ratio = agreed / compared if compared else 0.0
    skipped = Counter(o.skipped for o in outcomes if o.skipped)
    whole = sum(1 for o in outcomes if not o.skipped and not o.differences)
    total = sum(1 for o in outcomes if not o.skipped)
    categories: dict[str, list[str]] = {}
    for o in outcomes:
        for category, detail in o.differences:
            categories.setdefault(category, []).append(detail)
    counted = sum(1 for o in outcomes if not o.skipped and o.counts_agree)
    failures = sum(1 for o in outcomes if not o.skipped and o.failures_agree)
    lines = [
        f"crm_mon vs hastack status: {agreed}/{compared} items agree ({ratio:.2%}); "
        f"{whole}/{total} cases agree entirely; {seconds:.1f}s",
        f"  summary counts agree in {counted}/{total} cases, failed actions in {failures}/{total}",
        *(
            f"  text lines of {heading!r}: {text_ratio(outcomes, heading):.2%} of crm_mon's"
            for heading in TEXT_SECTIONS
        ),
        *(f"  skipped {n}: {why}" for why, n in skipped.most_common()),
    ]
    for category, details in sorted(categories.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {len(details):4d} {category}")
        lines += [f"         {d}" for d in details[:6]]
    return ratio, "\n".join(lines)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no scheduler corpus at {CORPUS}")
@pytest.mark.skipif(CRM_MON is None, reason="crm_mon (Debian's pacemaker-cli-utils) not found")
def test_status_view_agrees_with_crm_mon() -> None:
    outcomes, seconds = run_all()
    ratio, text = report(outcomes, seconds)
    print(text)
    compared = sum(o.compared for o in outcomes)
    assert compared > 3500, f"too few items compared (the corpus has about 3900):\n{text}"
    assert ratio >= MIN_AGREEMENT, text
    assert case_ratio(outcomes, "counts_agree") >= MIN_CASES_COUNTS, text
    assert case_ratio(outcomes, "failures_agree") >= MIN_CASES_FAILURES, text
    assert text_ratio(outcomes, "Node List:") >= MIN_TEXT_NODES, text
    assert text_ratio(outcomes, "Full List of Resources:") >= MIN_TEXT_RESOURCES, text
    assert text_ratio(outcomes, "Failed Resource Actions:") >= MIN_TEXT_FAILED, text
    assert text_ratio(outcomes, "Node Attributes:") >= MIN_TEXT_ATTRIBUTES, text
    assert text_ratio(outcomes, "Migration Summary:") >= MIN_TEXT_FAILCOUNTS, text


if __name__ == "__main__":
    if not CORPUS.is_dir() or CRM_MON is None:
        sys.exit(f"needs {CORPUS} and crm_mon")
    print(report(*run_all())[1])
