"""The real peer runs in the lab: heartbeat 3 in namespace hosts declares a killed node dead."""

from __future__ import annotations

import pytest

from hastack.lab.cluster import Timers
from hastack.lab.heartbeat import DEAD_LINE, HeartbeatCluster, heartbeat_unavailable_reason
from hastack.lab.logwatch import wait_for_line
from hastack.lab.netns import list_netns


def test_heartbeat_runs_in_namespaces_and_declares_a_killed_node_dead() -> None:
    reason = heartbeat_unavailable_reason()
    if reason:
        print(f"skipping: {reason}")
        pytest.skip(reason)
    with HeartbeatCluster(2, timers=Timers(keepalive=0.05, deadtime=0.2)) as hb:
        namespaces = hb.lab.namespaces if hb.lab else []
        hb.wait_sees_active(["n1"], "n2", timeout=60)
        tails = hb.tails(["n1"])
        t_kill = hb.kill("n2")
        _, line = wait_for_line(tails, DEAD_LINE.format(node="n2"), timeout=30)
        assert line.seen - t_kill > 0.2  # never before its deadtime
    assert not set(namespaces) & set(list_netns())
