"""The resource manager in the deterministic simulator: real controllers and messaging cores
against simulated faults, and the checkers of its three invariants proven able to fail.

Cost: a 3-node seed with crash faults takes about 0.3 s of CPU (33 simulated seconds); the
sweeps below are sized to run in well under a minute on two cores.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

import hastack
from hastack.crm.controller import MembershipView
from hastack.sim import SimConfig, SimResult, run_config, run_seed, run_seeds
from hastack.sim.cli import main as sim_main
from hastack.sim.crm import (
    GROUP_MEMBERS,
    RESOURCES,
    SINGLE,
    WALL0,
    SimController,
    default_cib,
)
from tests.unit.crm_harness import Cluster

CRASH = ("crash",)
MIXED = ("loss", "delay", "reorder", "dup", "partition", "asym", "crash", "pause", "drift")
CRM_INVARIANTS = ("crm-double-active", "crm-no-convergence", "crm-stale-order", "crm-error")


def _violations(results: list[SimResult], invariants: tuple[str, ...]) -> list[str]:
    return [
        f"seed {r.seed}: {v.invariant}: {v.message} (replay: {v.replay})"
        for r in results
        for v in r.violations
        if v.invariant in invariants
    ]


# ---- deliberately broken controllers: each must make one checker fail ---------------------


class NoTermCheck(SimController):
    """Runs any node's orders, whatever the term (the receiving side of split brain)."""

    def _from_dc(self, sender: str, message: Any) -> bool:
        return True


class StickyDc(SimController):
    """Keeps scheduling after the membership deposed it (a DC that ignores losing its lease):
    its orders carry the old term."""

    def _is_dc(self) -> bool:
        return self.dc_term is not None

    def _lose_dc(self, now: float) -> list[Any]:
        return []

    def membership_changed(self, view: MembershipView, now: float, wall: float) -> list[Any]:
        effects = super().membership_changed(view, now, wall)
        if self.dc_term is not None and not view.is_dc:
            self.dirty = True
            effects += self._after(now, wall)
        return effects


class StickyDcNoTermCheck(StickyDc, NoTermCheck):
    """A deposed DC that keeps ordering, and members that obey it."""


class NoJoinWait(SimController):
    """A DC that schedules without waiting for the members' joins, and without the status it
    knew: it does not know what runs elsewhere."""

    def _become_dc(self, now: float, wall: float) -> list[Any]:
        effects = super()._become_dc(now, wall)
        self.joined = set(self.view.members)
        self.states = {}
        return effects

    def _members_changed(self, old: MembershipView, now: float, wall: float) -> list[Any]:
        effects = super()._members_changed(old, now, wall)
        self.joined |= set(self.view.members)
        return effects


class NoQuorumStop(SimController):
    """Keeps its resources running when its partition loses quorum."""

    def _lost_quorum(self) -> list[Any]:
        return []


# ---- the real cores -------------------------------------------------------------------------


def test_a_clean_run_converges_with_every_resource_placed_once() -> None:
    result = run_seed(3, nodes=3, faults=(), crm=True)
    assert result.ok, [v.render() for v in result.violations]
    s = result.stats
    assert s["crm_actions"] > 0 and s["checks_crm_orders"] == s["crm_actions"]
    assert s["checks_crm_converge"] > 0  # the convergence check ran, and held
    assert 0 < s["max_crm_converge_s"] <= s["crm_converge_bound_s"]
    assert s["max_overlap_s"] == 0.0 and s["overlap_bound_s"] == 0.0  # no faults: no overlap


def test_crash_and_restart_faults_over_many_seeds_have_no_violation() -> None:
    config = SimConfig(nodes=3, faults=CRASH, crm=True)
    results = list(run_seeds(range(60), config, jobs=2))
    assert not _violations(results, (*CRM_INVARIANTS, "core-error"))
    assert all(r.stats["overlap_bound_s"] == 0.0 for r in results)  # crash-only: bound zero
    assert sum(r.stats["crashes"] for r in results) > 60
    assert sum(r.stats["checks_crm_converge"] for r in results) > 1000


def test_crash_faults_with_four_and_five_nodes() -> None:
    config = SimConfig(nodes=4, faults=CRASH, crm=True)
    results = list(run_seeds(range(100, 112), config, jobs=2, nodes_cycle=(4, 5)))
    assert not _violations(results, CRM_INVARIANTS)


def test_mixed_faults_with_partitions_respect_the_overlap_bound() -> None:
    """Invariant 1 under every fault kind: resources do run twice for a moment (without
    fencing the cut-off side stops only when it notices), never beyond the bound; and the
    other invariants hold too (convergence, orders, no core error)."""
    config = SimConfig(nodes=3, faults=MIXED, crm=True)
    results = list(run_seeds(range(40), config, jobs=2))
    assert not _violations(results, CRM_INVARIANTS)
    overlaps = [r.stats["max_overlap_s"] for r in results]
    assert max(overlaps) > 0.0  # overlaps happen, so the bound is exercised
    assert all(o <= r.stats["overlap_bound_s"] for o, r in zip(overlaps, results, strict=True))


def test_a_deposed_dc_is_not_obeyed() -> None:
    """The members' term check is what keeps a deposed DC's orders from running: with it,
    a DC that keeps scheduling after losing its lease makes no member act."""
    results = [
        run_seed(
            s,
            nodes=3,
            faults=("crash", "partition", "pause"),
            crm=True,
            controller_factory=StickyDc,
        )
        for s in range(2, 4)
    ]
    assert not _violations(results, ("crm-stale-order", "crm-error"))


# ---- the checkers can fail ------------------------------------------------------------------


def test_orders_of_a_deposed_dc_obeyed_are_caught() -> None:
    result = run_seed(
        2,
        nodes=3,
        faults=("crash", "partition", "pause"),
        crm=True,
        controller_factory=StickyDcNoTermCheck,
    )
    assert "crm-stale-order" in {v.invariant for v in result.violations}


def test_a_dc_that_does_not_wait_for_the_join_is_caught() -> None:
    result = run_seed(
        0, nodes=3, faults=("crash", "partition"), crm=True, controller_factory=NoJoinWait
    )
    caught = {v.invariant for v in result.violations}
    assert "crm-double-active" in caught, caught


def test_resources_kept_running_without_quorum_are_caught_by_the_bound() -> None:
    result = run_seed(15, nodes=3, faults=("partition",), crm=True, controller_factory=NoQuorumStop)
    (violation,) = [v for v in result.violations if v.invariant == "crm-double-active"]
    assert "bound" in violation.message and "--crm" in violation.replay


def test_a_resource_active_twice_after_crashes_is_caught_with_a_zero_bound() -> None:
    """Crash-only: any overlap at all is a violation (a DC that forgets what runs where
    starts a second copy while the first still runs)."""
    results = [
        run_seed(s, nodes=3, faults=CRASH, crm=True, controller_factory=NoJoinWait)
        for s in range(0, 6)
    ]
    messages = _violations(results, ("crm-double-active",))
    assert messages and "bound 0.000s" in messages[0]


def test_a_controller_that_never_schedules_fails_convergence() -> None:
    class Idle(SimController):
        def _schedule(self, now: float, wall: float) -> list[Any]:
            self.dirty = False
            return []

    result = run_seed(0, nodes=3, faults=(), crm=True, controller_factory=Idle)
    (violation,) = result.violations
    assert violation.invariant == "crm-no-convergence"
    assert all(f"{rsc} active on no node" in violation.message for rsc in RESOURCES)


# ---- replay ---------------------------------------------------------------------------------


def test_a_seed_replays_exactly_and_the_membership_only_run_is_unchanged() -> None:
    first = run_seed(7, nodes=3, faults=MIXED, crm=True)
    second = run_seed(7, nodes=3, faults=MIXED, crm=True)
    assert first.trace_hash == second.trace_hash and first.stats == second.stats
    plain = run_seed(7, nodes=3, faults=MIXED)
    assert plain.trace_hash != first.trace_hash
    assert "crm_actions" not in plain.stats and "--crm" not in plain.replay
    assert plain.trace_hash == run_seed(7, nodes=3, faults=MIXED).trace_hash


def test_a_crm_run_is_independent_of_python_hash_randomization() -> None:
    script = (
        "from hastack.sim import run_seed; "
        "r = run_seed(7, nodes=3, faults=('partition', 'crash', 'loss'), crm=True); "
        "print(r.trace_hash, r.stats['crm_actions'], len(r.violations))"
    )
    src = os.path.dirname(os.path.dirname(hastack.__file__))
    outputs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=src)
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(proc.stdout.strip())
    here = run_seed(7, nodes=3, faults=("partition", "crash", "loss"), crm=True)
    assert outputs == {f"{here.trace_hash} {here.stats['crm_actions']} {len(here.violations)}"}


def test_a_failing_seed_replays_with_its_violation() -> None:
    config = SimConfig(nodes=3, faults=("partition",), crm=True)
    first = run_config(15, config, controller_factory=NoQuorumStop)
    again = run_config(
        15, replace(config, duration=first.duration), controller_factory=NoQuorumStop
    )
    assert first.violations and first.violations == again.violations
    assert first.trace_hash == again.trace_hash


def test_the_cli_runs_the_crm_and_prints_its_checks() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = sim_main(["--crm", "--seed", "3", "--faults", "crash", "--json"])
    assert code == 0, out.getvalue()[-2000:]
    assert '"crm_actions"' in out.getvalue() and "--crm" in out.getvalue()


def test_a_broken_controller_violation_replays_from_its_command_line() -> None:
    config = SimConfig(
        nodes=3, faults=("partition",), crm=True, controller=f"{__name__}:NoQuorumStop"
    )
    result = run_config(15, config)
    (violation,) = [v for v in result.violations if v.invariant == "crm-double-active"]
    argv = violation.replay.split()[2:]  # after "hastack sim"
    assert "--controller" in argv and "--crm" in argv
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = sim_main(argv)
    assert code == 1
    assert violation.message in out.getvalue() and result.trace_hash in out.getvalue()


def test_the_cli_refuses_a_controller_without_crm_or_that_does_not_load() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert sim_main(["--seed", "1", "--controller", "x:Y"]) == 2
        assert sim_main(["--crm", "--seed", "1", "--controller", "nosuch_module:Y"]) == 2
        assert sim_main(["--crm", "--seed", "1", "--controller", "no-colon"]) == 2
    text = err.getvalue()
    assert "--controller needs --crm" in text and "nosuch_module" in text
    assert "expected module:Class" in text


def test_the_default_cib_has_a_group_and_a_primitive_without_fencing() -> None:
    cib = default_cib(["n1", "n2"])
    assert b'name="stonith-enabled" value="false"' in cib
    assert b'name="no-quorum-policy" value="stop"' in cib
    assert all(f'id="{r}"'.encode() in cib for r in (*GROUP_MEMBERS, SINGLE))
    assert b"ocf" in cib and b'provider="hastack" type="Dummy"' in cib


# ---- bugs found in the cores (the lead fixes them) ---------------------------------------------


def test_a_resource_stopped_for_a_moment_without_quorum_is_started_again() -> None:
    nodes = ["n1", "n2", "n3"]
    c = Cluster(default_cib(nodes), nodes)
    c.set_membership("n1", 1, nodes)
    c.run()
    (node,) = c.where(SINGLE)
    assert node != "n1"
    ctl = c.ctl[node]
    ran_before = {n: len(c.fake[n].ran) for n in nodes}
    # that member's view alone flaps: quorum lost (it stops what runs there) and back
    c.handle(
        node,
        ctl.membership_changed(MembershipView("n1", 1, False, tuple(nodes), False), c.now, c.wall),
    )
    c.handle(
        node,
        ctl.membership_changed(MembershipView("n1", 1, False, tuple(nodes), True), c.now, c.wall),
    )
    c.run()
    since = {n: [(r, a) for r, a, _ in c.fake[n].ran[ran_before[n] :]] for n in nodes}
    assert since[node][0] == (SINGLE, "stop")
    # the stop's result, outside any transition, made the DC schedule again at once (no
    # tick: not at the next cluster-recheck-interval)
    assert sum(actions.count((SINGLE, "start")) for actions in since.values()) == 1
    assert len(c.where(SINGLE)) == 1


def test_partition_and_pause_seed_35_converges() -> None:
    result = run_seed(35, nodes=3, faults=("partition", "pause"), crm=True)
    assert not _violations([result], ("crm-no-convergence",))


class QuorumRecorder(SimController):
    """Records, per node, the local times at which its view lost quorum."""

    lost: list[tuple[str, float]] = []

    def membership_changed(self, view: MembershipView, now: float, wall: float) -> list[Any]:
        if self.view.quorate and not view.quorate:
            QuorumRecorder.lost.append((self.node, wall - WALL0))
        return super().membership_changed(view, now, wall)


def test_the_majority_keeps_quorum_when_a_short_partition_of_the_dc_heals() -> None:
    # seed 35: partition [n1 | n2,n3] from 21.832 to 22.280 s; n1 (DC) declared n2 and n3 dead
    # at 22.27 s, they had not declared n1 dead (deadtime 0.5 s) when it healed
    QuorumRecorder.lost = []
    result = run_seed(
        35, nodes=3, faults=("partition", "pause"), crm=True, controller_factory=QuorumRecorder
    )
    assert result.stats["crm_actions"] > 0
    flaps = [(node, at) for node, at in QuorumRecorder.lost if node != "n1" and 21.8 < at < 22.5]
    assert not flaps


def test_seed_1106_with_five_nodes_never_runs_a_resource_twice() -> None:
    result = run_seed(1106, nodes=5, faults=MIXED, crm=True)
    assert not _violations([result], ("crm-double-active",))


def test_seed_2112_runs_no_order_of_an_earlier_tenure() -> None:
    # n1, DC of term 2, loses its lease and wins it back in the same term at 9.902 s
    result = run_seed(2112, nodes=3, faults=MIXED, crm=True)
    assert not _violations([result], ("crm-stale-order",))


class EarlierTenureOrders(SimController):
    """A DC that stamps its orders with its previous tenure once it has had two, and members
    that do not check the tenure: orders of an earlier tenure run after a later join."""

    def _to(self, node: str, message: dict[str, Any], now: float, wall: float) -> list[Any]:
        if message.get("t") == "exec" and self.tenure > 1:
            message = {**message, "tenure": self.tenure - 1}
        return super()._to(node, message, now, wall)

    def _from_tenure(self, sender: str, message: Any) -> bool:
        return self._from_dc(sender, message)


def test_the_order_checker_catches_an_order_of_an_earlier_tenure() -> None:
    # seed 1012: n1, DC of term 4, loses its lease and wins it back in that term
    result = run_seed(1012, nodes=3, faults=MIXED, crm=True, controller_factory=EarlierTenureOrders)
    found = _violations([result], ("crm-stale-order",))
    assert found and "tenure 1, after this node answered the join of ('n1', 4, 2)" in found[0]
