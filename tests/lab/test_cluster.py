"""Real `hastack node` daemons in namespace hosts: failure detection, redundant links,
partitions, asymmetric cuts, healing, paused processes. Statuses are read from each node's
control socket every 10 ms."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hastack.lab.cluster import Cluster, Status, Timers, acting_dcs, converged, summary

KEEPALIVE = 0.1
DEADTIME = 0.5
# Detection within deadtime plus this: the loop's tick, a status poll, a loaded 2-CPU box.
MARGIN = 0.3
TIMERS = Timers(keepalive=KEEPALIVE, deadtime=DEADTIME)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster(3, mode="netns", timers=TIMERS, links=2) as c:
        c.wait_converged(timeout=15)
        yield c


def dc_of(c: Cluster) -> str:
    states = c.statuses()
    dcs = {s["dc"] for s in states.values() if s is not None}
    assert len(dcs) == 1, summary(states)
    return str(dcs.pop())


def test_status_over_the_cli_has_the_documented_keys(cluster: Cluster) -> None:
    status = cluster["n2"].status_cli()
    assert {"node", "dc", "term", "quorate", "members", "nodes"} <= set(status)
    assert status["node"] == "n2"
    assert sorted(status["members"]) == ["n1", "n2", "n3"]


def test_killed_node_leaves_membership_within_deadtime(cluster: Cluster) -> None:
    victim = "n3"
    t_kill = cluster.kill(victim)
    observers = ["n1", "n2"]

    def gone(states: dict[str, Status | None]) -> bool:
        return all(
            s is not None and victim not in s["members"] and s["nodes"][victim]["state"] != "online"
            for s in states.values()
        )

    cluster.wait_for(gone, timeout=DEADTIME + 5, names=observers)
    elapsed = time.monotonic() - t_kill
    assert elapsed <= DEADTIME + MARGIN, f"detected after {elapsed:.3f} s"


def test_second_link_keeps_membership_when_the_first_is_cut(cluster: Cluster) -> None:
    assert cluster.lab is not None
    before = cluster.statuses()
    dc, term = before["n1"]["dc"], before["n1"]["term"]  # type: ignore[index]
    cluster.lab.cut("n3", link=0)  # both directions of eth0 on n3: n3 is on link 1 only
    time.sleep(3 * DEADTIME)
    states = cluster.statuses()
    for name in ("n1", "n2"):
        s = states[name]
        assert s is not None
        assert sorted(s["members"]) == ["n1", "n2", "n3"], summary(states)
        assert s["nodes"]["n3"]["state"] == "online"
        assert s["nodes"]["n3"]["links"] == {"ucast eth0": "down", "ucast eth1": "up"}
        assert (s["dc"], s["term"]) == (dc, term)  # a down link is not a failover
    s3 = states["n3"]
    assert s3 is not None and s3["quorate"] and sorted(s3["members"]) == ["n1", "n2", "n3"]
    assert s3["nodes"]["n1"]["links"] == {"ucast eth0": "down", "ucast eth1": "up"}


def test_partition_gives_quorum_and_dc_to_the_majority_only(cluster: Cluster) -> None:
    assert cluster.lab is not None
    cluster.lab.partition(["n1", "n2"], ["n3"])
    states = cluster.wait_for(lambda s: converged(s, ["n1", "n2"]), timeout=10, names=["n1", "n2"])
    assert states["n1"]["dc"] in ("n1", "n2")  # type: ignore[index]
    # The minority loses quorum and never acts as DC, for a while after the split too.
    cluster.wait_for(
        lambda s: s["n3"] is not None and not s["n3"]["quorate"], timeout=5, names=["n3"]
    )
    deadline = time.monotonic() + 2 * DEADTIME
    while time.monotonic() < deadline:
        all_states = cluster.statuses()
        s3 = all_states["n3"]
        assert s3 is not None and not s3["quorate"] and not s3["is_dc"], summary(all_states)
        assert acting_dcs(all_states) in ([], ["n1"], ["n2"]), summary(all_states)
        time.sleep(0.01)


def watch_for_two_dcs(c: Cluster, seconds: float) -> list[str]:
    """Poll every node every ~10 ms; return the sweeps in which two nodes claimed DC."""
    bad = []
    seen_dc = False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = c.statuses()
        acting = acting_dcs(states)
        seen_dc = seen_dc or bool(acting)
        if len(acting) > 1:
            bad.append(summary(states))
        time.sleep(0.01)
    assert seen_dc, "no node acted as DC at all while watching"
    return bad


@pytest.mark.parametrize("direction", ["dc-to-peer", "peer-to-dc"])
def test_asymmetric_cut_never_gives_two_dcs(cluster: Cluster, direction: str) -> None:
    assert cluster.lab is not None
    dc = dc_of(cluster)
    peer = next(n for n in cluster.names if n != dc)
    src, dst = (dc, peer) if direction == "dc-to-peer" else (peer, dc)
    cluster.lab.cut_between(src, dst, one_way=True)  # src -> dst lost on every link
    bad = watch_for_two_dcs(cluster, 6 * DEADTIME + 2)
    assert bad == [], f"two DCs at once: {bad[:3]}"
    cluster.lab.heal()
    cluster.wait_converged(timeout=15)


def test_healed_partition_rejoins(cluster: Cluster) -> None:
    assert cluster.lab is not None
    cluster.lab.partition(["n1"], ["n2", "n3"])
    cluster.wait_for(lambda s: converged(s, ["n2", "n3"]), timeout=10, names=["n2", "n3"])
    cluster.wait_for(lambda s: not s["n1"]["quorate"], timeout=5, names=["n1"])  # type: ignore[index]
    cluster.lab.heal()
    states = cluster.wait_converged(timeout=15)
    versions = {tuple(s["members_version"]) for s in states.values() if s is not None}
    assert len(versions) == 1, summary(states)  # one member list, one version of it


def test_paused_dc_is_replaced_and_never_acts_beside_the_new_one(cluster: Cluster) -> None:
    dc = dc_of(cluster)
    others = [n for n in cluster.names if n != dc]
    cluster.stop(dc)
    cluster.wait_for(lambda s: converged(s, others), timeout=10, names=others)
    cluster.cont(dc)
    bad = watch_for_two_dcs(cluster, 4 * DEADTIME)
    assert bad == [], f"two DCs at once after SIGCONT: {bad[:3]}"
    cluster.wait_converged(timeout=15)


def test_killed_dc_is_replaced_and_restarted_node_rejoins(cluster: Cluster) -> None:
    dc = dc_of(cluster)
    others = [n for n in cluster.names if n != dc]
    cluster.kill(dc)
    states = cluster.wait_for(lambda s: converged(s, others), timeout=10, names=others)
    assert states[others[0]]["dc"] in others  # type: ignore[index]
    cluster.start(dc)
    cluster.wait_converged(timeout=15)


@pytest.mark.parametrize("media", ["bcast", "mcast"])
def test_broadcast_and_multicast_links_form_a_cluster_and_detect_a_kill(media: str) -> None:
    with Cluster(3, mode="netns", timers=TIMERS, links=2, media=media) as c:  # type: ignore[arg-type]
        states = c.wait_converged(timeout=15)
        link_names = set(states["n1"]["nodes"]["n2"]["links"])  # type: ignore[index]
        assert link_names == {f"{media} eth0", f"{media} eth1"}, summary(states)
        c.kill("n3")
        c.wait_for(
            lambda s: all(
                x is not None and sorted(x["members"]) == ["n1", "n2"] for x in s.values()
            ),
            timeout=DEADTIME + 5,
            names=["n1", "n2"],
        )
