"""The loopback cluster (no root): three daemons on 127.0.0.x agree and replace a killed DC."""

from __future__ import annotations

import json
import os
import subprocess

from hastack.lab.cluster import Cluster, Timers, converged, hastack_argv, hastack_env

NEEDS_ROOT = False  # 127.0.0.0/8 needs no namespaces (see conftest)


def test_loopback_cluster_converges_and_replaces_a_killed_dc() -> None:
    with Cluster(3, mode="loopback", timers=Timers(keepalive=0.1, deadtime=0.5)) as c:
        states = c.wait_converged(timeout=15)
        dc = states["n1"]["dc"]  # type: ignore[index]
        others = [n for n in c.names if n != dc]
        c.kill(dc)
        after = c.wait_for(lambda s: converged(s, others), timeout=10, names=others)
        assert after[others[0]]["dc"] in others  # type: ignore[index]
        assert c.lab is None  # nothing outside loopback was created


def test_demo_on_loopback_reports_a_new_dc_and_cleans_up() -> None:
    out = subprocess.run(
        hastack_argv("demo", "--mode", "loopback", "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        env=hastack_env(),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["mode"] == "loopback"
    assert all(a[0].startswith("127.") for a in summary["nodes"].values())
    assert summary["new_dc"] != summary["killed"]
    assert summary["detection_s"] <= summary["deadtime"] + 0.3
    assert not os.path.exists(summary["workdir"])
