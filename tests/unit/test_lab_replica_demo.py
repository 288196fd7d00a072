"""`hastack demo`'s replicated disk, without root: its drbd.conf reads, its CIB is valid and the
scheduler puts the group on the Promoted instance, on n1, and on n2 once n1 fails; the writer's
lines are parsed back. The demo itself runs in tests/lab/test_demo.py."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hastack.lab.cluster import hastack_argv, hastack_env
from hastack.lab.replica_demo import (
    REPLICA_NODES,
    RESOURCE,
    ReplicaDisk,
    parse_line,
)
from hastack.replica.config import parse_drbd_conf, select_host


@dataclass
class FakeHost:
    addresses: list[str]


@dataclass
class FakeLab:
    hosts: dict[str, FakeHost] = field(default_factory=dict)

    def __getitem__(self, name: str) -> FakeHost:
        return self.hosts[name]


@dataclass
class FakeCluster:
    """What ReplicaDisk reads of a Cluster: its work directory, names and addresses."""

    workdir: str
    names: list[str] = field(default_factory=lambda: ["n1", "n2", "n3"])
    lab: FakeLab = field(default_factory=FakeLab)

    def __post_init__(self) -> None:
        for i, name in enumerate(self.names):
            self.lab.hosts[name] = FakeHost([f"10.9.0.{i + 1}", f"10.9.1.{i + 1}"])


def plan(tmp_path: Path) -> ReplicaDisk:
    return ReplicaDisk.plan(FakeCluster(str(tmp_path)))  # type: ignore[arg-type]


def test_drbd_conf_replicates_over_link_1_and_serves_nbd_on_loopback(tmp_path: Path) -> None:
    disk = plan(tmp_path)
    conf = parse_drbd_conf(disk.drbd_conf(), "drbd.conf")
    (res,) = conf.resources
    assert res.name == RESOURCE and res.net.protocol == "C"
    for i, node in enumerate(REPLICA_NODES):
        host, _peer = select_host(conf, RESOURCE, node)
        assert host.address.host_port == f"10.9.1.{i + 1}:7789"
        (volume,) = host.volumes
        assert volume.nbd_export.host_port == "127.0.0.1:10809"
        assert volume.disk == str(disk.images[node])
    # the one warning, on purpose: fast pings, the default (longer) handshake timeout
    (warning,) = conf.warnings
    assert "timeout 6 s is not lower than ping-int (1 s)" in str(warning)


def _cib_with_nodes(tmp_path: Path, disk: ReplicaDisk) -> Path:
    text = disk.cib("10.9.0.200").decode()
    text = text.replace("<cib ", '<cib have-quorum="1" dc-uuid="1" ', 1)
    nodes = "".join(f'<node id="{i + 1}" uname="n{i + 1}"/>' for i in range(3))
    text = text.replace("<nodes/>", f"<nodes>{nodes}</nodes>")
    states = "".join(
        f'<node_state id="{i + 1}" uname="n{i + 1}" in_ccm="true" crmd="online" '
        'join="member" expected="member"/>'
        for i in range(3)
    )
    text = text.replace("<status/>", f"<status>{states}</status>")
    path = tmp_path / "cib.xml"
    path.write_text(text)
    return path


def _simulate(path: Path, *extra: str) -> dict[str, list[tuple[str, str]]]:
    proc = subprocess.run(
        hastack_argv("simulate", "-x", str(path), "--json", *extra),
        capture_output=True,
        text=True,
        env=hastack_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    placement = json.loads(proc.stdout)["placement"]
    return {rsc: [(p["node"], p["role"]) for p in where] for rsc, where in placement.items()}


GROUP = ("disk", "fs", "vip", "writer", "httpd")


def test_the_cib_is_valid_and_the_group_follows_the_promoted_instance(tmp_path: Path) -> None:
    disk = plan(tmp_path)
    path = _cib_with_nodes(tmp_path, disk)
    verify = subprocess.run(
        hastack_argv("cib", "verify", str(path)),
        capture_output=True,
        text=True,
        env=hastack_env(),
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    placed = _simulate(path)
    assert sorted(placed["r0"]) == [("n1", "Promoted"), ("n2", "Unpromoted")]
    for member in GROUP:
        assert placed[member] == [("n1", "Started")], member
    failed = _simulate(path, "-F", "n1")
    assert failed["r0"] == [("n2", "Promoted")]
    for member in GROUP:
        assert failed[member] == [("n2", "Started")], member


def test_per_node_parameters_reach_each_node(tmp_path: Path) -> None:
    import time

    from hastack.crm.cib.xml import read_cib
    from hastack.crm.digest import Digester

    disk = plan(tmp_path)
    digester = Digester(read_cib(disk.cib("10.9.0.200")), time.time())
    for name in REPLICA_NODES:
        params, _ = digester.operation_parameters(digester.resource("r0"), name, "start", 0)
        assert params["node"] == name and params["socket"] == str(disk.sockets[name])
        writer, _ = digester.operation_parameters(digester.resource("writer"), name, "start", 0)
        assert writer["cmdline_options"].endswith(f" {name}")
    elsewhere, _ = digester.operation_parameters(digester.resource("r0"), "n3", "start", 0)
    assert "node" not in elsewhere and elsewhere["socket"].endswith("no-daemon-here.sock")


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("000042 n1 03:20:12.655", (42, "n1")),
        ("  000043 n2 03:20:14.947  ", (43, "n2")),
        ("Traceback (most recent call last):", None),
        ("000044 n1", None),
        ("", None),
    ],
)
def test_writer_lines(line: str, parsed: tuple[int, str] | None) -> None:
    assert parse_line(line) == parsed


def test_acknowledged_lines_are_those_the_node_printed(tmp_path: Path) -> None:
    disk = plan(tmp_path)
    disk.work.mkdir(parents=True)
    disk.writer_log.write_text(
        "000001 n1 03:00:00.000\n000002 n1 03:00:00.100\nTraceback...\n000003 n2 03:00:02.000\n"
    )
    assert disk.acknowledged("n1") == ["000001 n1 03:00:00.000", "000002 n1 03:00:00.100"]
    assert disk.acknowledged("n2") == ["000003 n2 03:00:02.000"]
