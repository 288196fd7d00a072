"""`hastack demo` in network namespaces: it powers off the node running the service, reports the
detection and the new DC, moves the service, and leaves nothing behind. With the replica tools
installed the service is the replicated-disk group (nbdfuse, ext4, floating IP, a writer, the
web server) on `hastack replica`'s Primary, and the data written before the power-off must be
on the survivor, its file system clean."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from hastack.lab.cluster import hastack_argv, hastack_env
from hastack.lab.netns import list_netns
from hastack.lab.replica_demo import parse_line, replica_unavailable_reason


def run_demo(*extra: str) -> dict[str, Any]:
    out = subprocess.run(
        hastack_argv("demo", "--mode", "netns", "--json", *extra),
        capture_output=True,
        text=True,
        timeout=240,
        env=hastack_env(),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def loops_bound_to(name: str) -> list[str]:
    """Loop devices whose backing file is called `name`."""
    found = []
    for entry in Path("/sys/block").glob("loop*"):
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if os.path.basename(backing.removesuffix(" (deleted)")) == name:
            found.append(entry.name)
    return found


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


def check_failover(summary: dict[str, Any]) -> dict[str, Any]:
    assert summary["mode"] == "netns"
    assert summary["new_dc"] in summary["nodes"] and summary["new_dc"] != summary["killed"]
    if summary["killed_was_dc"]:
        assert summary["term_after"] > summary["term_before"]
        assert summary["reelection_s"] >= summary["detection_s"]
    assert 0 < summary["detection_s"] <= summary["deadtime"] + 0.3
    # the floating IP and the service moved from the powered-off node to a survivor
    service = summary["service"]
    assert service["active"] == summary["killed"]
    assert len(service["now_on"]) == 1
    assert service["now_on"] != [summary["killed"]]
    assert service["downtime_s"] is not None and summary["detection_s"] < service["downtime_s"]
    # nothing the demo made is left (namespaces of other, concurrent labs may come and go)
    assert not os.path.exists(summary["workdir"])
    assert processes_mentioning(summary["workdir"]) == []
    return service


def test_demo_fails_the_replicated_disk_group_over_with_its_data() -> None:
    before = set(list_netns())
    summary = run_demo()
    assert set(list_netns()) - before == set()
    service = check_failover(summary)
    replica = summary["replica"]
    reason = replica_unavailable_reason()
    if reason is not None:
        assert replica == {"skipped": reason}
        print(f"the demo ran without its replicated disk: {reason}")
        assert service["downtime_s"] < 10
        return
    assert replica["skipped"] is None
    victim, survivor = replica["victim"], replica["survivor"]
    assert victim == summary["killed"] and service["now_on"] == [survivor]
    assert sorted([victim, survivor]) == replica["nodes"]
    assert replica["survivor_state"]["role"] == "Primary"
    assert replica["survivor_state"]["disk"] == "UpToDate"
    assert service["downtime_s"] < 60
    # The writer had acknowledged lines (each fsynced) before the power-off: the last one is
    # in writes.log as the survivor serves it, the numbering has no gap, and the survivor's
    # writer went on right after the last line the file kept.
    assert replica["acknowledged_before"] >= 10
    assert replica["found_on_survivor"], replica
    assert replica["consecutive"], replica
    last = parse_line(replica["last_acknowledged"])
    assert last is not None and last[1] == victim
    assert replica["line_number"] == last[0]
    first_new = parse_line(replica["first_from_survivor"])
    assert first_new is not None and first_new[1] == survivor
    assert last[0] < first_new[0] <= last[0] + 2  # at most one line written, not acknowledged
    assert replica["fsck_clean"], replica["fsck"]
    # no loop device is left bound to the demo's FUSE file, on either node
    assert loops_bound_to(os.path.basename(replica["device"])) == []


def test_demo_without_the_replicated_disk_moves_the_web_service_with_the_dc() -> None:
    before = set(list_netns())
    summary = run_demo("--no-replica")
    assert set(list_netns()) - before == set()
    assert summary["replica"] == {"skipped": "--no-replica"}
    service = check_failover(summary)
    assert summary["killed_was_dc"]  # the web group is moved to the DC before the power-off
    assert service["downtime_s"] < 10
