"""The simulated world itself: clocks, network conditions, processes and fencing."""

from __future__ import annotations

import random

import pytest

from hastack.membership.core import MembershipCore
from hastack.membership.effects import Log
from hastack.sim import SimConfig, parse_faults
from hastack.sim.clock import SimClock
from hastack.sim.network import Network
from hastack.sim.params import SIM_LINKS, sim_params
from hastack.sim.scenario import Crash, NetFault, Pause, Scenario
from hastack.sim.world import World

ALL_LINKS = (0, 1)


def scenario(
    nodes: int,
    net: tuple[NetFault, ...] = (),
    crashes: tuple[Crash, ...] = (),
    pauses: tuple[Pause, ...] = (),
) -> Scenario:
    return Scenario(
        offsets=tuple(1000.0 * (i + 1) for i in range(nodes)),
        rates=(1.0,) * nodes,
        start_at=tuple(0.01 * i for i in range(nodes)),
        net=net,
        crashes=crashes,
        pauses=pauses,
        rate_changes=(),
        windows=(),
    )


def world(nodes: int, duration: float, sc: Scenario, **config: object) -> World:
    cfg = SimConfig(nodes=nodes, duration=duration, faults=(), **config)  # type: ignore[arg-type]
    return World(1, cfg, sim_params(nodes), MembershipCore, sc)


def cut(groups: tuple[tuple[int, ...], ...], start: float, end: float, links=ALL_LINKS):
    side = {i: g for g, members in enumerate(groups) for i in members}
    pairs = tuple((s, d) for s in side for d in side if side[s] != side[d])
    return NetFault("partition", start, end, links, pairs, groups=groups)


def status(w: World, idx: int):
    node = w.nodes[idx]
    assert node.core is not None
    return node.core.status(node.clock.local(w.now))


def events(w: World, event: str) -> list[tuple[float, str]]:
    return [(at, who) for at, who, item in w.log if isinstance(item, Log) and item.event == event]


# ---- clocks -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.99, 1.0, 1.01, 0.999999, 1.0000001])
def test_tick_time_reaches_the_deadline_on_the_local_clock(rate: float) -> None:
    rng = random.Random(7)
    clock = SimClock(rng.uniform(10, 1e5), rate)
    for _ in range(2000):
        deadline = clock.local(rng.uniform(0, 100))
        real = clock.real_at(deadline)
        assert clock.local(real) >= deadline
        assert real == 0 or clock.local(real - abs(real) * 1e-12) <= deadline


def test_rate_change_keeps_the_clock_continuous() -> None:
    clock = SimClock(500.0, 1.0)
    before = clock.local(10.0)
    clock.set_rate(10.0, 1.01)
    assert clock.local(10.0) == pytest.approx(before)
    assert clock.local(11.0) == pytest.approx(before + 1.01)


# ---- network ------------------------------------------------------------------------------


def test_partition_on_all_links_gives_two_sides() -> None:
    net = Network(3, SIM_LINKS, random.Random(1))
    net.add(cut(((0,), (1, 2)), 0, 1))
    assert net.partition_groups() == [[0], [1, 2]]
    assert all(r.blocked for r in net.routes[0])
    assert not any(r.blocked for r in net.routes[1] if r.dst == 2)


def test_partition_on_one_link_leaves_one_side() -> None:
    net = Network(3, SIM_LINKS, random.Random(1))
    net.add(cut(((0,), (1, 2)), 0, 1, links=(0,)))
    assert net.partition_groups() == [[0, 1, 2]]
    blocked = {(r.link, r.dst) for r in net.routes[0] if r.blocked}
    assert blocked == {(SIM_LINKS[0], 1), (SIM_LINKS[0], 2)}


def test_asymmetric_cut_or_intransitive_links_have_no_sides() -> None:
    net = Network(3, SIM_LINKS, random.Random(1))
    asym = NetFault("asym", 0, 1, ALL_LINKS, ((0, 1),))
    net.add(asym)
    assert net.partition_groups() is None
    assert [r.blocked for r in net.routes[1] if r.dst == 0] == [False, False]
    net.remove(asym)
    net.add(NetFault("partition", 0, 1, ALL_LINKS, ((0, 2), (2, 0))))
    assert net.partition_groups() is None  # n1-n2 and n2-n3 but not n1-n3


def test_loss_duplication_and_delay_combine() -> None:
    net = Network(2, SIM_LINKS, random.Random(1))
    pairs = ((0, 1),)
    net.add(NetFault("loss", 0, 1, (0,), pairs, 0.5))
    net.add(NetFault("loss", 0, 1, (0,), pairs, 0.5))
    net.add(NetFault("dup", 0, 1, (0,), pairs, 0.3))
    net.add(NetFault("delay", 0, 1, (0,), pairs, 0.2))
    route = next(r for r in net.routes[0] if r.link == SIM_LINKS[0])
    assert route.loss == pytest.approx(0.75) and route.dup == 0.3 and route.delay > 0.2
    assert route.faulty


def test_fault_kinds_are_parsed_and_checked() -> None:
    assert parse_faults("loss, crash") == ("loss", "crash")
    assert "drift" in parse_faults("all")
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_faults("loss,meteor")


# ---- whole clusters -----------------------------------------------------------------------


def test_partition_keeps_the_dc_on_the_majority_side() -> None:
    w = world(3, 10.0, scenario(3, net=(cut(((0,), (1, 2)), 4.0, 11.0),)))
    result = w.run()
    assert result.ok, [v.render() for v in result.violations]
    assert not status(w, 0).quorate and not status(w, 0).is_dc
    dcs = [i for i in (1, 2) if status(w, i).is_dc]
    assert len(dcs) == 1
    assert status(w, 1).members == status(w, 2).members == ["n2", "n3"]
    assert result.stats["blocked"] > 0 and result.stats["checks_b"] > 0


def test_asymmetric_cut_blocks_one_direction_only() -> None:
    # n1 -> n2 is cut on both links; n2 -> n1 still works
    w = world(3, 6.0, scenario(3, net=(NetFault("asym", 4.0, 7.0, ALL_LINKS, ((0, 1),)),)))
    w.run()
    assert status(w, 1).nodes["n1"].state == "offline"
    assert status(w, 0).nodes["n2"].state == "online"


def test_crash_loses_in_flight_datagrams_and_restart_bumps_generation() -> None:
    w = world(3, 8.0, scenario(3, crashes=(Crash(1, 4.0, 1.0, graceful=False),)))
    result = w.run()
    assert result.ok, [v.render() for v in result.violations]
    assert result.stats["crashes"] == 1 and result.stats["restarts"] == 1
    assert result.stats["to_dead"] > 0
    assert w.nodes[1].generation == 2 and status(w, 1).generation == 2
    assert status(w, 0).nodes["n2"].generation == 2


def test_graceful_stop_says_goodbye() -> None:
    w = world(3, 4.5, scenario(3, crashes=(Crash(2, 4.0, 5.0, graceful=True),)))
    w.run()
    assert ("n3" in {who for _, who in events(w, "node-leave")}) and events(w, "node-left")


def test_paused_node_queues_datagrams_and_fires_timers_late() -> None:
    w = world(3, 7.0, scenario(3, pauses=(Pause(2, 4.0, 2.0),)), socket_buffer=5)
    result = w.run()
    assert result.ok, [v.render() for v in result.violations]
    assert result.stats["pauses"] == 1
    assert result.stats["overflow"] > 0  # 2 s of heartbeats do not fit in 5 datagrams
    stalls = [at for at, who in events(w, "loop-stall") if who == "n3"]
    assert stalls and stalls[0] == pytest.approx(6.0)  # the timer fired on resume, late


def test_two_node_partition_fences_the_peer() -> None:
    w = world(2, 9.0, scenario(2, net=(cut(((0,), (1,)), 4.0, 6.0),)))
    result = w.run()
    assert result.ok, [v.render() for v in result.violations]
    assert result.stats["fences"] >= 1
    assert result.stats["restarts"] >= 1  # the fenced node was powered off and came back
    assert events(w, "fenced")
