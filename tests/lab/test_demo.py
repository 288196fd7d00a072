"""`hastack demo` in network namespaces: it kills the DC, reports the new one, leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess

from hastack.lab.cluster import hastack_argv, hastack_env
from hastack.lab.netns import list_netns


def test_demo_in_namespaces_reports_a_new_dc_and_cleans_up() -> None:
    before = set(list_netns())
    out = subprocess.run(
        hastack_argv("demo", "--mode", "netns", "--json"),
        capture_output=True,
        text=True,
        timeout=120,
        env=hastack_env(),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["mode"] == "netns"
    assert summary["new_dc"] in summary["nodes"] and summary["new_dc"] != summary["killed"]
    assert summary["term_after"] > summary["term_before"]
    assert 0 < summary["detection_s"] <= summary["deadtime"] + 0.3
    assert summary["reelection_s"] >= summary["detection_s"]
    # the floating IP and the web server moved from the powered-off DC to a survivor
    service = summary["service"]
    assert service["active"] == summary["killed"]
    assert len(service["now_on"]) == 1
    assert service["now_on"] != [summary["killed"]]
    assert summary["detection_s"] < service["downtime_s"] < 10
    # nothing the demo made is left (namespaces of other, concurrent labs may come and go)
    assert set(list_netns()) - before == set()
    assert not os.path.exists(summary["workdir"])
