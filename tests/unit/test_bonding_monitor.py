"""The bond watcher: BondMonitor's events and node attributes over sequences of readings, the
cib-apply request and its publisher, watch_bonds over a temporary proc directory, and the
`hastack kernel bond` command line run as a subprocess against fixture trees."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hastack.bonding.cli import add_commands
from hastack.bonding.monitor import (
    AttributePublisher,
    BondEvent,
    BondMonitor,
    attribute_request,
    degraded_attribute,
    slaves_up_attribute,
    watch_bonds,
)
from hastack.bonding.procfs import BondStatus, Health, parse_bond_status, with_slave
from hastack.crm.operations import validate_operation
from hastack.daemon.control import ControlError

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "bonding"
PYTHON = ROOT / ".venv" / "bin" / "python"

UP = {"bond-bond0-slaves-up": "2", "bond-bond0-degraded": "0"}


def fixture(name: str, bond: str = "bond0") -> BondStatus:
    return parse_bond_status((FIXTURES / f"{name}.txt").read_text(), bond)


HEALTHY = fixture("active-backup-arp")  # eth0 active, eth0 and eth1 up
# eth0 down: the kernel fails over to eth1
DEGRADED = with_slave(
    BondStatus(**{**HEALTHY.__dict__, "active_slave": "eth1"}),
    "eth0",
    mii_status="down",
    link_failure_count=1,
)
DOWN = with_slave(
    BondStatus(**{**DEGRADED.__dict__, "active_slave": None, "mii_status": "down"}),
    "eth1",
    mii_status="down",
    link_failure_count=1,
)


def kinds(events: tuple[BondEvent, ...]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.slave) for e in events]


# --------------------------------------------------------------------------------------------
# BondMonitor


def test_a_first_healthy_reading_sets_the_attributes_and_reports_nothing() -> None:
    monitor = BondMonitor()
    seen = monitor.observe(0.0, HEALTHY)
    assert seen.events == ()
    assert dict(seen.attributes) == UP
    assert monitor.health("bond0") is Health.HEALTHY
    # the same reading again changes nothing
    again = monitor.observe(1.0, HEALTHY)
    assert again.events == () and dict(again.attributes) == {}


def test_a_slave_down_fails_over_and_degrades_then_up_again_is_healthy() -> None:
    monitor = BondMonitor()
    monitor.observe(0.0, HEALTHY)
    down = monitor.observe(1.0, DEGRADED)
    assert kinds(down.events) == [("slave-down", "eth0"), ("failover", "eth1"), ("degraded", None)]
    assert down.events[0].message == "bond0: eth0 is down (1 link failure since last read)"
    assert down.events[1].message == "bond0: active slave eth0 -> eth1"
    assert "single point of failure" in down.events[2].message
    assert all(e.at == 1.0 and e.bond == "bond0" for e in down.events)
    assert dict(down.attributes) == {"bond-bond0-slaves-up": "1", "bond-bond0-degraded": "1"}

    up = monitor.observe(3.5, HEALTHY)
    assert kinds(up.events) == [("slave-up", "eth0"), ("failover", "eth0"), ("healthy", None)]
    assert up.events[2].message == "bond0 is healthy again after 2.5 s degraded"
    assert dict(up.attributes) == UP


def test_degraded_to_down_reports_down_and_only_the_attribute_that_changed() -> None:
    monitor = BondMonitor()
    monitor.observe(0.0, HEALTHY)
    monitor.observe(1.0, DEGRADED)
    down = monitor.observe(2.0, DOWN)
    assert kinds(down.events) == [("slave-down", "eth1"), ("down", None)]
    assert "no slave is up" in down.events[-1].message
    # degraded was 1 already: only the live slave count changed
    assert dict(down.attributes) == {"bond-bond0-slaves-up": "0"}
    assert monitor.health("bond0") is Health.DOWN
    back = monitor.observe(12.0, HEALTHY)
    assert back.events[-1].kind == "healthy"
    assert back.events[-1].message == "bond0 is healthy again after 10 s down"


def test_a_first_reading_that_is_degraded_is_reported() -> None:
    seen = BondMonitor().observe(0.0, DEGRADED)
    assert kinds(seen.events) == [("degraded", None)]
    assert dict(seen.attributes) == {"bond-bond0-slaves-up": "1", "bond-bond0-degraded": "1"}


def test_a_flap_between_two_readings_is_reported_from_the_link_failure_count() -> None:
    monitor = BondMonitor()
    monitor.observe(0.0, HEALTHY)
    flapped = with_slave(HEALTHY, "eth1", link_failure_count=2)
    seen = monitor.observe(1.0, flapped)
    assert kinds(seen.events) == [("slave-flapped", "eth1")]
    assert seen.events[0].message == "bond0: eth1 flapped (2 link failures since last read)"
    assert dict(seen.attributes) == {}


def test_slaves_added_and_removed() -> None:
    monitor = BondMonitor()
    monitor.observe(0.0, HEALTHY)
    eth0 = HEALTHY.slave("eth0")
    assert eth0 is not None
    from dataclasses import replace

    swapped = replace(HEALTHY, slaves=(eth0, replace(eth0, interface="eth2")))
    seen = monitor.observe(1.0, swapped)
    assert kinds(seen.events) == [("slave-added", "eth2"), ("slave-removed", "eth1")]


def test_an_unreadable_bond_counts_as_no_live_slave_reported_once() -> None:
    monitor = BondMonitor()
    monitor.observe(0.0, HEALTHY)
    gone = monitor.observe_unreadable(1.0, "bond0", "/proc/net/bonding/bond0 is gone")
    assert kinds(gone.events) == [("unreadable", None)]
    assert gone.events[0].message == "bond0: /proc/net/bonding/bond0 is gone"
    assert dict(gone.attributes) == {"bond-bond0-slaves-up": "0", "bond-bond0-degraded": "1"}
    assert monitor.health("bond0") is None
    still = monitor.observe_unreadable(2.0, "bond0", "still gone")
    assert still.events == () and dict(still.attributes) == {}
    back = monitor.observe(3.0, HEALTHY)
    assert kinds(back.events) == [("healthy", None)]
    assert back.events[0].message == "bond0 is readable and healthy again"
    assert dict(back.attributes) == UP


def test_bonds_are_kept_apart_and_attributes_gives_every_current_value() -> None:
    monitor = BondMonitor()
    monitor.observe(0.0, HEALTHY)
    other = fixture("active-backup-degraded", "bond1")
    seen = monitor.observe(0.0, other)
    assert {e.bond for e in seen.events} == {"bond1"}
    assert monitor.bonds() == ["bond0", "bond1"]
    assert monitor.attributes() == {
        **UP,
        "bond-bond1-slaves-up": "1",
        "bond-bond1-degraded": "1",
    }


def test_time_going_backwards_is_refused() -> None:
    monitor = BondMonitor()
    monitor.observe(5.0, HEALTHY)
    with pytest.raises(ValueError, match=r"time went backwards: 4\.0 after 5\.0"):
        monitor.observe(4.0, HEALTHY)


def test_attribute_names() -> None:
    assert slaves_up_attribute("bond0") == "bond-bond0-slaves-up"
    assert degraded_attribute("bond0") == "bond-bond0-degraded"


# --------------------------------------------------------------------------------------------
# The cluster side: the request and the publisher


def test_attribute_request_is_a_valid_transient_node_attribute_cib_apply() -> None:
    request = attribute_request("n1", "bond-bond0-degraded", "1")
    assert request == {
        "cmd": "cib-apply",
        "operation": {
            "op": "node-attribute",
            "node": "n1",
            "name": "bond-bond0-degraded",
            "value": "1",
            "lifetime": "reboot",
        },
    }
    assert validate_operation(request["operation"]) == request["operation"]
    deleted = attribute_request("n1", "bond-bond0-degraded", None)
    assert deleted["operation"]["value"] is None


class FakeDaemon:
    """A control socket's answers, in order: an exception to raise or a reply."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[Path, dict[str, Any]]] = []

    def __call__(self, path: Path, request: dict[str, Any]) -> Any:
        self.requests.append((path, request))
        answer = self.answers.pop(0) if self.answers else {"ok": True}
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_publisher_keeps_what_failed_for_the_next_flush() -> None:
    daemon = FakeDaemon(
        ConnectionRefusedError(111, "Connection refused"),  # slaves-up: not reached
        {"error": "no DC yet"},  # degraded: refused
    )
    publisher = AttributePublisher(Path("/run/n1/control.sock"), "n1", query=daemon)
    publisher.update({"bond-bond0-slaves-up": "1", "bond-bond0-degraded": "1"})
    problems = publisher.flush()
    assert problems == [
        "bond-bond0-slaves-up=1: cannot reach /run/n1/control.sock: [Errno 111] Connection refused",
        "bond-bond0-degraded=1: the node daemon refused it: no DC yet",
    ]
    assert publisher.pending == {"bond-bond0-slaves-up": "1", "bond-bond0-degraded": "1"}
    # a newer value replaces the one that waits: the latest reading is what counts
    publisher.update({"bond-bond0-slaves-up": "2"})
    assert publisher.flush() == []
    assert publisher.pending == {}
    sent = [r["operation"] for _, r in daemon.requests[2:]]
    assert [(o["name"], o["value"]) for o in sent] == [
        ("bond-bond0-slaves-up", "2"),
        ("bond-bond0-degraded", "1"),
    ]
    assert all(p == Path("/run/n1/control.sock") for p, _ in daemon.requests)


def test_the_publisher_reports_a_control_error_and_retries() -> None:
    daemon = FakeDaemon(ControlError("bad answer"))
    publisher = AttributePublisher(Path("/x"), "n2", query=daemon)
    publisher.update({"bond-bond0-degraded": "0"})
    assert publisher.flush() == ["bond-bond0-degraded=0: cannot reach /x: bad answer"]
    assert publisher.flush() == []
    assert daemon.requests[-1][1]["operation"]["node"] == "n2"


# --------------------------------------------------------------------------------------------
# watch_bonds over a temporary proc directory the test rewrites between rounds


def test_watch_bonds_follows_a_proc_directory_rewritten_between_rounds(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    shutil.copy(FIXTURES / "active-backup-arp.txt", proc / "bond0")
    # the rounds' files: degraded, down, gone, back and healthy
    script = [
        lambda: shutil.copy(FIXTURES / "active-backup-degraded.txt", proc / "bond0"),
        lambda: shutil.copy(FIXTURES / "active-backup-down.txt", proc / "bond0"),
        lambda: (proc / "bond0").unlink(),
        lambda: shutil.copy(FIXTURES / "active-backup-arp.txt", proc / "bond0"),
        lambda: None,
    ]
    events: list[BondEvent] = []
    attributes: list[dict[str, str]] = []
    ticks = iter(range(100))

    def after_round() -> None:
        script.pop(0)()

    async def on_attributes(changed: Mapping[str, str]) -> None:  # an async sink works too
        attributes.append(dict(changed))

    monitor = asyncio.run(
        watch_bonds(
            proc,
            0.0,
            events.append,
            on_attributes=on_attributes,
            after_round=after_round,
            clock=lambda: float(next(ticks)),
            rounds=5,
        )
    )
    assert [(e.at, e.kind) for e in events] == [
        (1.0, "slave-down"),
        (1.0, "failover"),
        (1.0, "degraded"),
        (2.0, "slave-down"),
        (2.0, "down"),
        (3.0, "unreadable"),
        (4.0, "healthy"),
    ]
    assert events[5].message == f"bond0: {proc / 'bond0'} is gone"
    assert attributes == [
        UP,
        {"bond-bond0-slaves-up": "1", "bond-bond0-degraded": "1"},
        {"bond-bond0-slaves-up": "0"},
        UP,
    ]
    assert monitor.health("bond0") is Health.HEALTHY
    assert script == []  # after_round ran once per round


def test_watch_bonds_reports_a_named_bond_that_does_not_parse(tmp_path: Path) -> None:
    (tmp_path / "bond0").write_text("Bonding Mode: warp drive\n")
    events: list[BondEvent] = []
    asyncio.run(watch_bonds(tmp_path, 0.0, events.append, bonds=["bond0"], rounds=1))
    assert [e.kind for e in events] == ["unreadable"]
    assert f"{tmp_path / 'bond0'}:1: unknown bonding mode 'warp drive'" in events[0].message


# --------------------------------------------------------------------------------------------
# The command line


def test_add_commands_adds_bond_with_its_three_actions() -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="part"))
    args = parser.parse_args(["bond", "status", "bond0", "--json", "--proc", "/tmp/p"])
    assert (args.bond, args.json, args.proc) == ("bond0", True, Path("/tmp/p"))
    assert args.func.__name__ == "run_status"
    args = parser.parse_args(["bond", "configure", "bond0", "--slave", "eth0", "--slave", "eth1"])
    assert args.slave == ["eth0", "eth1"] and args.func.__name__ == "run_configure"
    args = parser.parse_args(["bond", "watch", "--count", "3", "--interval", "0.5"])
    assert (args.count, args.interval, args.bonds) == (3, 0.5, [])
    assert args.func.__name__ == "run_watch"


def bond(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    python = str(PYTHON) if PYTHON.exists() else sys.executable
    return subprocess.run(
        [python, "-m", "hastack", "kernel", "bond", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def proc_tree(tmp_path: Path, **bonds: str) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    for name, fixture_name in bonds.items():
        shutil.copy(FIXTURES / f"{fixture_name}.txt", proc / name)
    return proc


def test_cli_status_of_healthy_bonds_exits_0(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path, bond0="active-backup-arp", bond1="802.3ad")
    done = bond("status", "--proc", str(proc))
    assert done.returncode == 0, done.stderr
    assert "bond0: healthy — active-backup" in done.stdout
    assert "bond1: healthy — 802.3ad" in done.stdout
    assert "AGGREGATOR" in done.stdout  # the 802.3ad table has the aggregator column


def test_cli_status_of_a_degraded_bond_exits_1_and_says_why(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path, bond0="active-backup-arp", bond1="active-backup-degraded")
    done = bond("status", "--proc", str(proc))
    assert done.returncode == 1
    assert "bond1: degraded" in done.stdout
    assert "reason: only one live slave (eth1): a single point of failure" in done.stdout
    one = bond("status", "bond0", "--proc", str(proc))
    assert one.returncode == 0 and "bond1" not in one.stdout


def test_cli_status_json(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path, bond0="active-backup-down", bond1="balance-rr")
    done = bond("status", "--json", "--proc", str(proc))
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert [d["bond"] for d in document] == ["bond0", "bond1"]
    assert document[0]["verdict"]["health"] == "down"
    assert document[0]["status"]["mode"] == "active-backup"
    assert document[1]["verdict"] == {
        "health": "healthy",
        "live_slaves": ["eth0", "eth1"],
        "reasons": [],
        "warnings": [],
    }
    assert document[1]["error"] is None


def test_cli_status_of_a_malformed_or_missing_bond_names_the_file(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path)
    (proc / "bond0").write_text("Bonding Mode: load balancing (round-robin)\nMII Status: maybe\n")
    done = bond("status", "--json", "--proc", str(proc))
    assert done.returncode == 1
    [entry] = json.loads(done.stdout)
    assert entry["status"] is None
    assert entry["error"].startswith(f"{proc / 'bond0'}:2: MII Status: 'maybe' is not a link")
    missing = bond("status", "bond9", "--proc", str(proc))
    assert missing.returncode == 1
    assert f"bond9: unreadable: {proc / 'bond9'}: No such file or directory" in missing.stdout
    nothing = bond("status", "--proc", str(tmp_path / "none"))
    assert nothing.returncode == 1
    assert "the bonding driver is not loaded" in nothing.stderr


def sysfs_tree(tmp_path: Path) -> Path:
    """A bonding driver with one bond, bond0: active-backup, miimon 100, eth0 and eth1, up."""
    root = tmp_path / "sys"
    base = root / "class/net/bond0/bonding"
    base.mkdir(parents=True)
    (root / "class/net/bonding_masters").write_text("bond0\n")
    (root / "class/net/bond0/flags").write_text("0x1003\n")
    files = {
        "mode": "active-backup 1",
        "miimon": "100",
        "arp_interval": "0",
        "arp_ip_target": "",
        "fail_over_mac": "none 0",
        "slaves": "eth0 eth1",
        "primary": "",
        "updelay": "0",
        "downdelay": "0",
    }
    for name, value in files.items():
        (base / name).write_text(value + "\n")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_configure_dry_run_prints_the_writes_and_changes_nothing(tmp_path: Path) -> None:
    root = sysfs_tree(tmp_path)
    before = snapshot(root)
    done = bond(
        "configure", "bond0", "--mode", "balance-alb", "--primary", "eth1",
        "--dry-run", "--sysfs", str(root),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line.split("    #")[0] for line in done.stdout.splitlines()]
    base = f"{root}/class/net/bond0"
    assert lines == [
        f"echo -eth0 > {base}/bonding/slaves",
        f"echo -eth1 > {base}/bonding/slaves",
        f"echo 0x1002 > {base}/flags",
        f"echo balance-alb > {base}/bonding/mode",
        f"echo 0x1003 > {base}/flags",
        f"echo +eth0 > {base}/bonding/slaves",
        f"echo +eth1 > {base}/bonding/slaves",
        f"echo eth1 > {base}/bonding/primary",
        "# dry run: 8 write(s), nothing changed",
    ]
    assert snapshot(root) == before


def test_cli_configure_writes_the_tree(tmp_path: Path) -> None:
    root = sysfs_tree(tmp_path)
    done = bond("configure", "bond0", "--miimon", "200", "--updelay", "400", "--sysfs", str(root))
    assert done.returncode == 0, done.stderr
    base = root / "class/net/bond0/bonding"
    assert (base / "miimon").read_text() == "200\n"
    assert (base / "updelay").read_text() == "400\n"
    assert done.stdout.splitlines()[-1] == "# bond0: 2 write(s) done"


def test_cli_configure_refused_exits_1_and_changes_nothing(tmp_path: Path) -> None:
    root = sysfs_tree(tmp_path)
    before = snapshot(root)
    done = bond(
        "configure", "bond0", "--miimon", "200", "--arp-interval", "100",
        "--arp-ip-target", "10.0.0.1,10.0.0.2", "--sysfs", str(root),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("hastack kernel bond configure: miimon and arp_interval")
    assert done.stdout == ""
    assert snapshot(root) == before


def test_cli_configure_without_the_driver_fails_but_a_dry_run_plans_a_new_bond(
    tmp_path: Path,
) -> None:
    done = bond("configure", "bond0", "--mode", "1", "--sysfs", str(tmp_path))
    assert done.returncode == 1
    assert "the bonding driver is not loaded (modprobe bonding)" in done.stderr
    dry = bond("configure", "bond0", "--mode", "1", "--dry-run", "--sysfs", str(tmp_path))
    assert dry.returncode == 0
    assert f"echo +bond0 > {tmp_path}/class/net/bonding_masters" in dry.stdout
    assert f"echo active-backup > {tmp_path}/class/net/bond0/bonding/mode" in dry.stdout
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_command_lines_exit_2(tmp_path: Path) -> None:
    assert bond("configure", "bond0", "--miimon", "fast").returncode == 2
    assert bond("frobnicate").returncode == 2
    zero = bond("watch", "--proc", str(tmp_path), "--interval", "0")
    assert zero.returncode == 2 and "--interval must be more than 0" in zero.stderr
    count = bond("watch", "--proc", str(tmp_path), "--count", "0")
    assert count.returncode == 2 and "--count must be at least 1" in count.stderr


def test_cli_watch_count_prints_events_and_attributes_as_json(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path, bond0="active-backup-degraded", bond1="balance-xor")
    done = bond("watch", "--proc", str(proc), "--count", "2", "--interval", "0.05", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    events = [(d["event"]["bond"], d["event"]["kind"]) for d in lines if "event" in d]
    assert events == [("bond0", "degraded")]  # the second round changes nothing
    attributes = {d["attribute"]: d["value"] for d in lines if "attribute" in d}
    assert attributes == {
        "bond-bond0-slaves-up": "1",
        "bond-bond0-degraded": "1",
        "bond-bond1-slaves-up": "2",
        "bond-bond1-degraded": "0",
    }


def test_cli_watch_reports_a_daemon_it_cannot_reach_and_goes_on(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path, bond0="balance-rr")
    socket = tmp_path / "no" / "control.sock"
    done = bond(
        "watch", "bond0", "--proc", str(proc), "--count", "2", "--interval", "0.05",
        "--socket", str(socket), "--node", "n1",
    )  # fmt: skip
    assert done.returncode == 0
    assert "bond-bond0-degraded=0" in done.stdout
    problems = [line for line in done.stderr.splitlines() if "cannot reach" in line]
    # both attributes failed in round one and were retried (still failing) in round two
    assert len(problems) == 4, done.stderr
    assert all(str(socket) in line for line in problems)
