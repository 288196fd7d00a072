"""The quorum server in the deterministic simulator (`hastack sim --crm --fencing`, the
`qserver` fault): the real server core on a host of its own, the real client core on every
node, over the simulated network (hastack.sim.qserver).

The seed's scenarios, with two sites and a quorum server (a site is one node of a two-node
cluster, or two of a four-node one):

* site 1 down: site 2 keeps quorum through the server's vote, fences site 1, runs everything;
* the quorum server down while both sites are up: the cluster stays quorate, nothing stops,
  nothing is fenced;
* the quorum server and site 1 down: site 2 loses quorum and stops its resources.

Then: seeds of the fencing mode's mix that drew a quorum server keep every invariant; the
server is a host that a partition can cut off from both sites (no two DCs while the grant
both sites held lapses: how the simulator found that the membership core counted one grant
on both sides of a cut); and the new invariant (6), only a quorate partition fences, is
shown to catch a controller that asks to fence without quorum and a fencing handed to the
fencer without it.

Cost: about 15 s in all; each scenario runs 20-35 simulated seconds (under a second).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from hastack.crm.controller import FenceRequest, RunAgent
from hastack.membership.core import MembershipCore
from hastack.sim import SimConfig, SimResult, run_config, run_seeds
from hastack.sim.bounds import derive_bounds
from hastack.sim.crm import RESOURCES, CrmWorld, SimController
from hastack.sim.params import sim_params, sim_timing
from hastack.sim.runner import load_factory, params_for
from hastack.sim.scenario import (
    EXTRA_KINDS,
    FAULT_KINDS,
    FENCING_FAULT_KINDS,
    Crash,
    NetFault,
    QServerDown,
    QServerHost,
    Scenario,
    generate_scenario,
)
from hastack.sim.world import World

LEASE = 1.0  # the lab's quorum-server lease at the same timers (tests/lab)
HOST = QServerHost(lease=LEASE, tie_breaker="lowest", offset=5000.0, rate=1.0)
FENCING = SimConfig(crm=True, fencing=True, faults=(), duration=30.0)
OUTAGE = 8.0  # when the faults start: the cluster has settled, the server's vote is held


def _scenario(nodes: int, **faults: Any) -> Scenario:
    return Scenario(
        offsets=tuple(1000.0 * (i + 1) for i in range(nodes)),
        rates=(1.0,) * nodes,
        start_at=tuple(0.01 * i for i in range(nodes)),
        net=faults.get("net", ()),
        crashes=faults.get("crashes", ()),
        pauses=(),
        rate_changes=(),
        windows=(),
        qserver=HOST,
        qserver_downs=faults.get("downs", ()),
    )


def _world(nodes: int, duration: float, sc: Scenario) -> World:
    config = replace(FENCING, nodes=nodes, duration=duration)
    return World(1, config, sim_params(nodes), MembershipCore, sc)


def _advance(world: World, until: float) -> SimResult:
    """Run the world up to `until` (it goes on from there when called again)."""
    world.duration = until
    return world.run()


def _status(world: World, idx: int) -> Any:
    node = world.nodes[idx]
    assert node.core is not None
    return node.core.status(node.clock.local(world.now))


def _running(world: World, idx: int) -> set[str]:
    assert world.crm is not None
    return {r for r in world.crm.slots[idx].running if r in RESOURCES}


def _report(result: SimResult) -> str:
    return "\n\n".join(v.render() for v in result.violations)


def _sites(nodes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    half = nodes // 2
    return tuple(range(half)), tuple(range(half, nodes))


def _settled(world: World) -> None:
    """Before the faults: every node quorate, holding the server's vote, everything placed."""
    result = _advance(world, OUTAGE - 0.01)
    assert result.ok, _report(result)
    for i in range(len(world.nodes)):
        status = _status(world, i)
        assert status.quorate and status.quorum_device_vote, (i, status)
        assert status.expected_votes == len(world.nodes) + 1  # the server's vote counts
    placed = [r for i in range(len(world.nodes)) for r in _running(world, i)]
    assert sorted(placed) == sorted(RESOURCES)


def _record_actions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str, str, str]]:
    """Every action the simulated executor runs: (time, node, resource, action)."""
    actions: list[tuple[float, str, str, str]] = []
    run = CrmWorld._run

    def recording(self: CrmWorld, node: Any, slot: Any, effect: RunAgent) -> None:
        spec = effect.spec
        actions.append((self.world.now, node.name, spec.resource, spec.action))
        run(self, node, slot, effect)

    monkeypatch.setattr(CrmWorld, "_run", recording)
    return actions


# ---- the seed's scenarios ---------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [2, 4])
def test_site_1_down_site_2_keeps_quorum_through_the_server_and_runs_everything(
    nodes: int,
) -> None:
    site1, site2 = _sites(nodes)
    crashes = tuple(Crash(i, OUTAGE, 1000.0, graceful=False) for i in site1)
    world = _world(nodes, 25.0, _scenario(nodes, crashes=crashes))
    _settled(world)
    result = _advance(world, 25.0)
    assert result.ok, _report(result)
    for i in site2:
        status = _status(world, i)
        # the site's own votes are half of the nodes': the server's vote makes the quorum
        assert status.quorate and status.quorum_device_vote, status
        assert status.votes == len(site2) + 1 and status.quorum == nodes // 2 + 1
        assert sorted(status.members) == [world.nodes[j].name for j in site2]
    assert any(_status(world, i).is_dc for i in site2)
    placed = [r for i in site2 for r in _running(world, i)]
    assert sorted(placed) == sorted(RESOURCES)  # everything runs on site 2, once
    assert result.stats["fence_requests"] >= len(site1)  # site 1 was fenced before the move
    assert result.stats["checks_fence_move"] > 0 and result.stats["checks_fence_quorum"] > 0


@pytest.mark.parametrize("nodes", [2, 4])
def test_quorum_server_down_with_both_sites_up_nothing_stops_and_nothing_is_fenced(
    nodes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = _record_actions(monkeypatch)
    downs = (QServerDown(OUTAGE, 10.0),)
    world = _world(nodes, 35.0, _scenario(nodes, downs=downs))
    _settled(world)
    before = [_running(world, i) for i in range(nodes)]
    seen = len(actions)
    lost = regained = False
    t = OUTAGE
    while t < 35.0:
        t += 0.25
        result = _advance(world, t)
        statuses = [_status(world, i) for i in range(nodes)]
        assert all(s.quorate for s in statuses), (t, statuses)  # the nodes' own votes
        lost |= t < OUTAGE + 10.0 and not any(s.quorum_device_vote for s in statuses)
        regained |= t > OUTAGE + 10.0 and all(s.quorum_device_vote for s in statuses)
    assert result.ok, _report(result)
    assert result.stats["qserver_downs"] == 1
    assert lost, "the grant lapsed while the server was down"
    assert regained, "the nodes reconnected and the new server granted the vote again"
    assert [_running(world, i) for i in range(nodes)] == before
    changes = [a for a in actions[seen:] if a[3] in ("start", "stop", "promote", "demote")]
    assert changes == [], "nothing stops or moves"
    assert result.stats["fence_requests"] == 0 and result.stats["powered_off"] == 0


@pytest.mark.parametrize("nodes", [2, 4])
def test_quorum_server_and_site_1_down_site_2_loses_quorum_and_stops(
    nodes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = _record_actions(monkeypatch)
    site1, site2 = _sites(nodes)
    # the server goes first; site 1 a little later, once site 2's grant has lapsed
    downs = (QServerDown(OUTAGE, 1000.0),)
    crash_at = OUTAGE + 2 * LEASE
    crashes = tuple(Crash(i, crash_at, 1000.0, graceful=False) for i in site1)
    world = _world(nodes, 25.0, _scenario(nodes, downs=downs, crashes=crashes))
    _settled(world)
    had = set().union(*(_running(world, i) for i in site2))
    result = _advance(world, crash_at - 0.01)
    assert all(_status(world, i).quorate for i in range(nodes))  # still, without the server
    assert all(not _status(world, i).quorum_device_vote for i in range(nodes))
    result = _advance(world, 25.0)
    assert result.ok, _report(result)
    for i in site2:
        status = _status(world, i)
        assert not status.quorate and not status.is_dc, status
        assert status.votes == len(site2) and not status.quorum_device_vote
        assert _running(world, i) == set()  # no quorum: no service (no-quorum-policy=stop)
    after = [a for a in actions if a[0] >= crash_at and a[1] in {f"n{i + 1}" for i in site2}]
    stopped = {a[2] for a in after if a[3] == "stop" and a[2] in RESOURCES}
    assert stopped == had  # what it ran, it stopped
    assert not [a for a in after if a[3] == "start"], "nothing starts without quorum"
    assert result.stats["fence_requests"] == 0, "a site without quorum fences nobody"


# ---- the sweep --------------------------------------------------------------------------------


def _with_server(config: SimConfig, seeds: range, count: int, cycle: tuple[int, ...]) -> list[int]:
    """The first `count` seeds of `seeds` whose cluster has a quorum server (a share of
    them, drawn from the seed: the World is built, not run)."""
    found = []
    for seed in seeds:
        c = replace(config, nodes=cycle[seed % len(cycle)])
        if World(seed, c, params_for(c), load_factory()).qs is not None:
            found.append(seed)
            if len(found) == count:
                break
    return found


def test_seeds_with_a_quorum_server_keep_every_invariant() -> None:
    """The fencing mode's default mix (as the CI sweep runs it), on the seeds that drew a
    quorum server: its crash, the partitions that cut it off, drift of its clock, and every
    other fault; and seeds where the server's crash is the only fault."""
    cycle = (2, 3, 4)
    mixed = replace(FENCING, faults=FENCING_FAULT_KINDS)
    seeds = _with_server(mixed, range(1000), 12, cycle)
    results = list(run_seeds(seeds, mixed, jobs=2, nodes_cycle=cycle))
    alone = replace(FENCING, faults=("qserver",))
    results += list(run_seeds(range(6), alone, jobs=2, nodes_cycle=cycle))
    failing = [r for r in results if r.violations]
    assert not failing, "\n\n".join(_report(r) for r in failing[:3])
    assert all("qserver_lease_s" in r.stats for r in results)
    total = {k: sum(r.stats.get(k, 0) for r in results) for k in results[0].stats}
    assert total["qserver_downs"] >= 8
    assert total["qserver_votes_gained"] > 0 and total["qserver_votes_lost"] > 0
    assert total["checks_fence_quorum"] > 0 and total["powered_off"] > 0


# ---- the wiring -------------------------------------------------------------------------------


def test_the_qserver_kind_is_drawn_only_when_asked_for() -> None:
    """The other modes keep their schedules: their mixes never draw it (and draw nothing
    more for it); the fencing mode's default mix has it, and a share of its seeds get a
    quorum server (two-node clusters more often); asked for alone, every seed gets one."""
    assert "qserver" in EXTRA_KINDS and "qserver" in FENCING_FAULT_KINDS
    assert "qserver" not in FAULT_KINDS
    timing = sim_timing(0.1, 0.5)

    def draw(seed: int, nodes: int, kinds: tuple[str, ...]) -> Scenario:
        bounds = derive_bounds(timing, nodes, 0.003)
        return generate_scenario(random.Random(seed), nodes, 2, kinds, 30.0, timing, bounds)

    assert all(draw(s, 2, FAULT_KINDS).qserver is None for s in range(20))
    two = [draw(s, 2, FENCING_FAULT_KINDS) for s in range(100)]
    three = [draw(s, 3, FENCING_FAULT_KINDS) for s in range(100)]
    assert 8 < sum(sc.qserver is not None for sc in two) < 35
    assert sum(sc.qserver is not None for sc in three) < sum(sc.qserver is not None for sc in two)
    assert not any(sc.qserver_downs for sc in two + three if sc.qserver is None)
    alone = [draw(s, 3, ("qserver",)) for s in range(5)]
    assert all(sc.qserver is not None and sc.qserver_downs for sc in alone)


def test_a_partition_can_cut_the_server_off_from_both_sites() -> None:
    """The server is a host of the network: here n1 | n2 | server. Each site keeps the
    grant it holds until its membership changes, then neither has quorum: no DC, nothing
    runs, and no two DCs while the grants lapse."""
    groups = ((0,), (1,), (2,))
    side = {i: g for g, members in enumerate(groups) for i in members}
    pairs = tuple((s, d) for s in side for d in side if side[s] != side[d])
    cut = NetFault("partition", OUTAGE, 1000.0, (0, 1), pairs, groups=groups)
    world = _world(2, 20.0, _scenario(2, net=(cut,)))
    _settled(world)
    result = _advance(world, 20.0)
    assert result.ok, _report(result)
    assert world.qs is not None and world.network.qserver_reach() == [False, False]
    for i in range(2):
        status = _status(world, i)
        assert not status.quorate and not status.quorum_device_vote and not status.is_dc
        assert _running(world, i) == set()


def test_a_quorum_server_seed_replays_exactly() -> None:
    config = replace(FENCING, nodes=2, faults=("qserver",))
    first, again = run_config(3, config), run_config(3, config)
    assert "qserver_lease_s" in first.stats and first.stats["qserver_downs"] > 0
    assert first.trace_hash == again.trace_hash and first.stats == again.stats
    assert "--faults qserver " in first.replay


# ---- the checker can fail ---------------------------------------------------------------------


class FencesWithoutQuorum(SimController):
    """When it loses quorum, asks to fence every other node (as if it still led)."""

    def _lost_quorum(self) -> list[Any]:
        peers = [n for n in self.node_ids if n != self.node]
        mutant = [FenceRequest(n, "reboot", "mutant: fencing without quorum") for n in peers]
        return super()._lost_quorum() + mutant


def _invariant(results: list[SimResult], name: str) -> list[Any]:
    return [v for r in results for v in r.violations if v.invariant == name]


def test_a_controller_that_asks_to_fence_without_quorum_is_caught() -> None:
    config = replace(FENCING, nodes=3, faults=("partition",))
    results = [run_config(s, config, controller_factory=FencesWithoutQuorum) for s in range(4)]
    found = _invariant(results, "fence-without-quorum")
    assert found, "the minority's controller asked to fence the majority"
    assert "asks to fence" in found[0].message and "not quorate" in found[0].message
    assert "--controller" not in found[0].replay or found[0].replay  # replayable as printed
    # the real controller, on the same seeds, never does
    good = [run_config(s, config) for s in range(4)]
    assert not [r for r in good if r.violations], "\n".join(_report(r) for r in good)
    assert sum(r.stats["checks_fence_quorum"] for r in good) > 0


def test_a_fencing_handed_to_the_fencer_by_a_node_without_quorum_is_caught() -> None:
    """The second place the check looks: when a fencing reaches the node's fencer (after
    the hold). n1 is cut off from n2 and n3: a fencing the controller hands its fencer
    there is caught; the exceptions by design (a node fencing itself for
    no-quorum-policy=suicide, a two_node survivor's membership) are not."""
    groups = ((0,), (1, 2))
    side = {i: g for g, members in enumerate(groups) for i in members}
    pairs = tuple((s, d) for s in side for d in side if side[s] != side[d])
    cut = NetFault("partition", OUTAGE, 1000.0, (0, 1), pairs, groups=groups)
    sc = replace(_scenario(3, net=(cut,)), qserver=None)
    world = World(1, replace(FENCING, nodes=3, duration=20.0), sim_params(3), MembershipCore, sc)
    result = _advance(world, 12.0)
    assert result.ok, _report(result)
    n1 = world.nodes[0]
    assert world.fence is not None and not _status(world, 0).quorate
    for requester in ("no-quorum-policy", "membership"):
        world.fence._request(n1, "n1", "reboot", requester, "by design", 0.0)
    assert "violations_fence-without-quorum" not in world.stats
    world.fence._request(n1, "n2", "reboot", "controller", "test", 0.0)
    (found,) = _invariant([_advance(world, 12.5)], "fence-without-quorum")
    assert "n1 hands its fencer a fencing of n2" in found.message
