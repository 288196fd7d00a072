"""benchmarks/cibgen.py: the scheduler benchmark's generated CIBs are deterministic, valid,
record correct op-digests, and give a transition that touches only the intended changes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hastack.crm.cib.model import Group
from hastack.crm.cib.validate import DEFAULT_SCHEMA_DIR, is_valid, validate
from hastack.crm.cib.xml import read_cib
from hastack.crm.digest import Digester, DigestResult
from hastack.crm.placement import place
from hastack.crm.state import resource_states
from hastack.crm.transition import plan

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from cibgen import Generated, generate


@pytest.fixture(scope="module")
def small() -> Generated:
    return generate(120, 5, seed=7)


def test_same_seed_same_bytes_other_seed_other_cluster() -> None:
    assert generate(40, 4, seed=3).xml == generate(40, 4, seed=3).xml
    assert generate(40, 4, seed=3).xml != generate(40, 4, seed=4).xml


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 resource and 2 nodes"):
        generate(0, 4)
    with pytest.raises(ValueError, match="at least 1 resource and 2 nodes"):
        generate(10, 1)


def test_sizes_agents_groups_and_constraints(small: Generated) -> None:
    cib = read_cib(small.xml.encode(), source="generated")
    primitives = cib.all_primitives()
    assert len(primitives) == 120
    assert {p.agent for p in primitives} == {"ocf:heartbeat:IPaddr2", "ocf:heartbeat:Dummy"}
    groups = [r for r in cib.resources if isinstance(r, Group)]
    assert groups, "some primitives sit in groups"
    assert all(g.children[0].type == "IPaddr2" for g in groups), "a group starts with its address"
    assert len(cib.nodes) == 5
    text = small.xml
    for kind in ("rsc_location", "rsc_colocation", "rsc_order", "cli-prefer-", "-INFINITY"):
        assert kind in text
    assert "<clone" not in text and "<bundle" not in text


@pytest.mark.skipif(
    not (DEFAULT_SCHEMA_DIR / "pacemaker-3.9.rng").exists(), reason="no Pacemaker schemas"
)
def test_valid_against_pacemakers_schema(small: Generated) -> None:
    problems = validate(small.xml.encode(), "generated")
    assert is_valid(problems), [str(p) for p in problems]


def test_every_recorded_digest_matches_the_configuration(small: Generated) -> None:
    """The controller's digests, recomputed: an unchanged resource must never restart."""
    cib = read_cib(small.xml.encode(), source="generated")
    digester = Digester(cib)
    checked = 0
    for node_state in cib.status:
        for lrm in node_state.lrm_resources:
            for op in lrm.ops:
                assert op.op_digest is not None
                result, why, _ = digester.compare(node_state.uname, op, lrm.id)
                assert result is DigestResult.MATCH, why
                checked += 1
    # every node probed every resource that is not new, plus starts and monitors where run
    assert checked >= 5 * (120 - len(small.changes.new))


def test_status_shows_the_settled_cluster(small: Generated) -> None:
    cib = read_cib(small.xml.encode(), source="generated")
    state = resource_states(cib)
    changes = small.changes
    for primitive in cib.all_primitives():
        active = sorted(e.node for e in state.of(primitive.id) if e.role.active)
        expected = [small.running[primitive.id]] if primitive.id in small.running else []
        assert active == expected, primitive.id
        failed = [e.node for e in state.of(primitive.id) if e.failed]
        assert (primitive.id in changes.failed) == bool(failed), primitive.id
    assert all(rid not in small.running for rid in changes.new)


def test_the_transition_does_only_the_intended_changes(small: Generated) -> None:
    cib = read_cib(small.xml.encode(), source="generated")
    state = resource_states(cib)
    placement = place(cib, state)
    transition = plan(cib, state, placement, None, sanitized=True)
    c = small.changes
    assert len(c.moved) == len(c.stopped) == len(c.failed) == 2
    moved, stopped, new = set(c.moved), set(c.stopped), set(c.new)
    lone = {r.id for r in cib.resources if not isinstance(r, Group)}
    assert moved | stopped | new | set(c.failed) <= lone, "changes are on lone primitives"
    touched = {a.rsc for a in transition.actions}
    assert touched == moved | stopped | new | set(c.failed)
    # everything else stays exactly where it ran
    for rid, node in small.running.items():
        if rid not in touched:
            assert placement.final[rid] == (node,), rid
    for rid in moved:
        assert placement.final[rid] != (small.running[rid],), rid
    for rid in stopped:
        assert placement.final[rid] == (), rid
    for rid in new:  # probed on every node, then started
        probes = {a.node for a in transition.actions if a.rsc == rid and a.task == "monitor"}
        assert {f"node{i}" for i in range(1, 6)} <= probes
        assert len(placement.final[rid]) == 1
    restarted, migrated = c.failed  # the second has migration-threshold=1
    assert placement.final[restarted] == (small.running[restarted],)
    assert placement.final[migrated] not in ((), (small.running[migrated],))


def test_tiny_cluster_still_has_each_kind_of_change() -> None:
    g = generate(10, 3, seed=1)
    assert [len(v) for v in vars(g.changes).values()] == [1, 1, 1, len(g.changes.new)]
    assert g.changes.new


# --- the benchmark's own helpers (benchmarks/scheduler.py) ---------------------------------

SUMMARY = (
    "Current cluster status:\n    * r1\t(ocf:heartbeat:Dummy):\t Started node01\n\n"
    "Revised Cluster Status:\n  * Full List of Resources:\n"
    "    * r1\t(ocf:heartbeat:Dummy):\t Started node02\n"
    "    * r2\t(ocf:heartbeat:IPaddr2):\t Stopped (disabled)\n"
    "    * Resource Group: g1:\n"
    "      * r3\t(ocf:heartbeat:IPaddr2):\t Started node03\n"
    "      * r4\t(ocf:heartbeat:Dummy):\t FAILED node03\n"
)


def test_revised_status_is_read_from_crm_simulates_summary() -> None:
    from scheduler import parse_revised

    assert parse_revised(SUMMARY) == {
        "r1": ["node02"],
        "r2": [],
        "r3": ["node03"],
        "r4": ["node03"],
    }


def test_growth_exponent_is_the_log_log_slope() -> None:
    from scheduler import exponent

    assert exponent([(10, 5), (100, 50), (1000, 500)]) == pytest.approx(1.0)
    assert exponent([(10, 100), (100, 10_000)]) == pytest.approx(2.0)
    assert exponent([(10, 1), (10, 2)]) is None  # one size: nothing to fit
