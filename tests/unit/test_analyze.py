"""`hastack analyze`: one configuration directory per SPOF rule, bad input, the availability
estimate (checked against a Monte-Carlo run of the same model), --figures, the CLI's JSON and
exit codes, and the real sample files that Debian ships and `hastack config init` writes.

Every directory is built in tmp_path from GOOD (a well-built two-node cluster that must report
nothing) with one thing broken, so each test shows one rule firing and only that rule.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hastack.analyze.cli import EXIT_CLEAN, EXIT_SPOF, EXIT_UNREADABLE, add_commands
from hastack.analyze.findings import (
    ANALYZE_FIGURES,
    Configuration,
    Finding,
    analyze_figures,
    estimate,
    find_spofs,
    service_model,
)
from hastack.analyze.load import LoadError, load_directory
from hastack.availability.model import (
    DEFAULT_FIGURES,
    Block,
    Component,
    ModelError,
    Parallel,
    Series,
)
from hastack.availability.montecarlo import simulate

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# ---------------------------------------------------------------------------------------------
# The well-built cluster: two heartbeat links on two interfaces (eth0, eth1), two ping nodes,
# a watchdog, auto_failback off, a quorum server, IPMI fencing on a management network of its
# own (10.8.0.0/24, on neither heartbeat interface), DRBD protocol C under a file system, every
# resource monitored, and stickiness (200) above the one location preference (100).

GOOD_HACF = """\
node alpha beta
ucast eth0 10.0.0.1
ucast eth0 10.0.0.2
ucast eth1 10.0.1.1
ucast eth1 10.0.1.2
ping 10.9.0.1 10.9.0.2
watchdog /dev/watchdog
auto_failback off
quorum_server 10.5.0.9:5403
"""

GOOD_AUTHKEYS = "auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n"

FENCE_ALPHA = """\
      <primitive id="fence-alpha" class="stonith" type="fence_ipmilan">
        <instance_attributes id="fa"><nvpair id="fa1" name="ipaddr" value="10.8.0.11"/>
        </instance_attributes>
        <operations><op id="fam" name="monitor" interval="60s"/></operations>
      </primitive>
"""
FENCE_BETA = """\
      <primitive id="fence-beta" class="stonith" type="fence_ipmilan">
        <instance_attributes id="fb"><nvpair id="fb1" name="ipaddr" value="10.8.0.12"/>
        </instance_attributes>
        <operations><op id="fbm" name="monitor" interval="60s"/></operations>
      </primitive>
"""
DRBD_PRIMITIVE = """\
      <primitive id="data" class="ocf" provider="linbit" type="drbd">
        <instance_attributes id="di"><nvpair id="d1" name="drbd_resource" value="r0"/>
        </instance_attributes>
        <operations><op id="dm" name="monitor" interval="20s"/></operations>
      </primitive>
"""
FS_PRIMITIVE = """\
      <primitive id="fs" class="ocf" provider="heartbeat" type="Filesystem">
        <instance_attributes id="fsi">
          <nvpair id="fs1" name="device" value="/dev/drbd0"/>
          <nvpair id="fs2" name="directory" value="/srv"/>
          <nvpair id="fs3" name="fstype" value="ext4"/>
        </instance_attributes>
        <operations><op id="fsm" name="monitor" interval="20s"/></operations>
      </primitive>
"""
STONITH_ON = '<nvpair id="o1" name="stonith-enabled" value="true"/>'
PREFERENCE = '<rsc_location id="pref" rsc="fs" node="alpha" score="100"/>'
STICKY = (
    '<meta_attributes id="rd"><nvpair id="rd1" name="resource-stickiness" value="200"/>'
    "</meta_attributes>"
)


def cib_xml(
    resources: str = FENCE_ALPHA + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE,
    crm_config: str = STONITH_ON,
    constraints: str = PREFERENCE,
    rsc_defaults: str = STICKY,
) -> str:
    return f"""\
<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        {crm_config}
      </cluster_property_set>
    </crm_config>
    <nodes><node id="1" uname="alpha"/><node id="2" uname="beta"/></nodes>
    <resources>
{resources}    </resources>
    <constraints>
      {constraints}
    </constraints>
    <rsc_defaults>{rsc_defaults}</rsc_defaults>
  </configuration>
  <status/>
</cib>
"""


def drbd_conf(protocol: str = "C") -> str:
    return f"""\
resource r0 {{
  net {{ protocol {protocol}; }}
  on alpha {{ device /dev/drbd0; disk /dev/sdb1; meta-disk internal; address 10.0.2.1:7789; }}
  on beta {{ device /dev/drbd0; disk /dev/sdb1; meta-disk internal; address 10.0.2.2:7789; }}
}}
"""


GOOD_WATCHDOG = "watchdog-device = /dev/watchdog\ninterval = 10\n"

GOOD: dict[str, str] = {
    "ha.cf": GOOD_HACF,
    "authkeys": GOOD_AUTHKEYS,
    "cib.xml": cib_xml(),
    "drbd.conf": drbd_conf(),
    "watchdog.conf": GOOD_WATCHDOG,
}

# The R1 (haresources) form of the same cluster: fencing from ha.cf's stonith_host.
GOOD_R1_HACF = GOOD_HACF + "stonith_host * external/ipmi 10.8.0.11 admin secret\n"
GOOD_R1_HARESOURCES = "alpha 10.0.0.100 drbddisk::r0 Filesystem::/dev/drbd0::/srv::ext4\n"


def swap(text: str, old: str, new: str) -> str:
    """`text` with `old` replaced; fails loudly if the fixture no longer contains `old`."""
    assert old in text, f"fixture text changed: {old!r} not found"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing `needle`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the fixture")


def primitive_line(cib: str, rsc_id: str) -> int:
    return line_of(cib, f'id="{rsc_id}"')


def write_dir(directory: Path, files: dict[str, str | None]) -> Path:
    """Write a configuration directory: GOOD overridden by `files` (None: leave it out)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in {**GOOD, **files}.items():
        if text is None:
            continue
        path = directory / name
        path.write_text(text)
        if name == "authkeys":
            path.chmod(0o600)  # authkeys with any other mode is refused (tested below)
    return directory


def analyse(directory: Path) -> tuple[Configuration, list[Finding]]:
    config = load_directory(str(directory))
    return config, find_spofs(config)


def ids(findings: list[Finding]) -> set[str]:
    return {f.id for f in findings}


def only(findings: list[Finding], finding_id: str) -> Finding:
    """The one finding of the directory; it must be `finding_id` (nothing else fired)."""
    assert [f.id for f in findings] == [finding_id], [(f.id, f.what) for f in findings]
    return findings[0]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [PYTHON, "-m", "hastack", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )


# ---------------------------------------------------------------------------------------------
# The well-built directory reports nothing


def test_the_well_built_directory_reports_no_finding(tmp_path: Path) -> None:
    config, findings = analyse(write_dir(tmp_path, {}))
    assert findings == []
    assert {f.name: f.status for f in config.files} == {
        "ha.cf": "read",
        "authkeys": "read",
        "cib.xml": "read",
        "haresources": "absent",
        "drbd.conf": "read",
        "watchdog.conf": "read",
    }


def test_the_well_built_r1_directory_reports_no_finding(tmp_path: Path) -> None:
    d = write_dir(
        tmp_path,
        {"ha.cf": GOOD_R1_HACF, "cib.xml": None, "haresources": GOOD_R1_HARESOURCES},
    )
    config, findings = analyse(d)
    assert config.r1 and config.cib is not None
    assert findings == []


NO_QUORUM_SERVER = swap(GOOD_HACF, "quorum_server 10.5.0.9:5403\n", "")
DELAYED_FENCE = swap(
    FENCE_ALPHA,
    'value="10.8.0.11"/>',
    'value="10.8.0.11"/><nvpair id="fa2" name="pcmk_delay_max" value="15s"/>',
)


@pytest.mark.parametrize(
    "files",
    [
        # a random delay on a fence device
        {
            "ha.cf": NO_QUORUM_SERVER,
            "cib.xml": cib_xml(
                resources=DELAYED_FENCE + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE
            ),
        },
        # priority-fencing-delay in crm_config
        {
            "ha.cf": NO_QUORUM_SERVER,
            "cib.xml": cib_xml(
                crm_config=STONITH_ON
                + '<nvpair id="o2" name="priority-fencing-delay" value="10s"/>'
            ),
        },
        # ha.cf two_node on (the controller then applies its default 5 s delay)
        {"ha.cf": NO_QUORUM_SERVER + "two_node on\n"},
    ],
    ids=["pcmk_delay_max", "priority-fencing-delay", "two_node"],
)
def test_a_fence_race_delay_instead_of_a_quorum_server_is_enough(
    tmp_path: Path, files: dict[str, str | None]
) -> None:
    assert analyse(write_dir(tmp_path, files))[1] == []


# ---------------------------------------------------------------------------------------------
# One directory per rule


def test_one_heartbeat_link(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "ucast eth1 10.0.1.1\nucast eth1 10.0.1.2\n", "")
    _, findings = analyse(write_dir(tmp_path, {"ha.cf": hacf}))
    f = only(findings, "single-heartbeat-link")
    assert f.severity == "spof"
    assert "ucast eth0" in f.what
    assert "takes it for dead" in f.why and "split brain" in f.why
    assert "add a second heartbeat medium" in f.fix
    assert f.where == f"{tmp_path}/ha.cf:2"


def test_all_links_on_one_interface(tmp_path: Path) -> None:
    # a ucast link and a bcast link, both on eth0: two links, one NIC and one switch port
    hacf = swap(GOOD_HACF, "ucast eth1 10.0.1.1\nucast eth1 10.0.1.2\n", "bcast eth0\n")
    _, findings = analyse(write_dir(tmp_path, {"ha.cf": hacf}))
    f = only(findings, "links-one-interface")
    assert f.severity == "spof"
    assert "all 2 heartbeat links use interface eth0" in f.what
    assert "cuts every one of them at once" in f.why
    assert "another interface" in f.fix and "bond eth0" in f.fix
    assert f.where == f"{tmp_path}/ha.cf:4"  # the second link


def test_links_on_one_interface_plus_a_serial_line_are_redundant(tmp_path: Path) -> None:
    hacf = swap(
        GOOD_HACF, "ucast eth1 10.0.1.1\nucast eth1 10.0.1.2\n", "bcast eth0\nserial /dev/ttyS0\n"
    )
    assert analyse(write_dir(tmp_path, {"ha.cf": hacf}))[1] == []


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("ping 10.9.0.1 10.9.0.2\n", "ping 10.9.0.1\n", "ping 10.9.0.1"),
        ("ping 10.9.0.1 10.9.0.2\n", "ping_group gw 10.9.0.1\n", "ping_group gw 10.9.0.1"),
    ],
    ids=["ping", "ping_group"],
)
def test_one_ping_node(tmp_path: Path, old: str, new: str, what: str) -> None:
    _, findings = analyse(write_dir(tmp_path, {"ha.cf": swap(GOOD_HACF, old, new)}))
    f = only(findings, "single-ping-node")
    assert f.severity == "spof"
    assert f"one ping node decides connectivity ({what})" == f.what
    assert "every node loses connectivity together" in f.why
    assert "ping two or more independent addresses" in f.fix
    assert f.where == f"{tmp_path}/ha.cf:6"


def test_a_ping_group_of_two_addresses_is_not_one_ping_node(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "ping 10.9.0.1 10.9.0.2\n", "ping_group gw 10.9.0.1 10.9.0.2\n")
    assert analyse(write_dir(tmp_path, {"ha.cf": hacf}))[1] == []


def test_one_ping_node_in_a_pingd_resource(tmp_path: Path) -> None:
    pingd = """\
      <primitive id="ping" class="ocf" provider="pacemaker" type="ping">
        <instance_attributes id="pi"><nvpair id="p1" name="host_list" value="10.9.0.7"/>
        </instance_attributes>
        <operations><op id="pm" name="monitor" interval="10s"/></operations>
      </primitive>
"""
    cib = cib_xml(resources=FENCE_ALPHA + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE + pingd)
    _, findings = analyse(write_dir(tmp_path, {"cib.xml": cib}))
    f = only(findings, "single-ping-node")
    assert "ping host_list=10.9.0.7" in f.what
    assert f.where == f"{tmp_path}/cib.xml:{primitive_line(cib, 'ping')}"


def test_no_fence_device_while_stonith_is_enabled(tmp_path: Path) -> None:
    cib = cib_xml(resources=DRBD_PRIMITIVE + FS_PRIMITIVE)
    _, findings = analyse(write_dir(tmp_path, {"cib.xml": cib}))
    f = only(findings, "no-fencing")
    assert f.severity == "spof"
    assert f.what == "stonith-enabled is true but no fence device is configured"
    assert "nothing to fence with" in f.why
    assert "add a stonith primitive" in f.fix
    assert f.where == f"{tmp_path}/cib.xml:{line_of(cib, 'stonith-enabled')}"


def test_stonith_disabled_is_no_fencing_even_with_devices(tmp_path: Path) -> None:
    cib = cib_xml(crm_config='<nvpair id="o1" name="stonith-enabled" value="false"/>')
    _, findings = analyse(write_dir(tmp_path, {"cib.xml": cib}))
    f = only(findings, "no-fencing")
    assert f.what == "fencing is disabled (stonith-enabled=false)"
    assert "split brain" in f.why
    assert "set stonith-enabled=true" in f.fix
    assert f.where == f"{tmp_path}/cib.xml:{line_of(cib, 'stonith-enabled')}"


def test_r1_without_a_stonith_device(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {"cib.xml": None, "haresources": GOOD_R1_HARESOURCES})
    _, findings = analyse(d)
    f = only(findings, "no-fencing")
    assert f.what == "no fencing: ha.cf names no stonith device"
    assert "ha.cf stonith_host" in f.fix


def test_watchdog_self_fencing_counts_as_a_fence_device(tmp_path: Path) -> None:
    cib = cib_xml(
        resources=DRBD_PRIMITIVE + FS_PRIMITIVE,
        crm_config=STONITH_ON + '<nvpair id="o2" name="have-watchdog" value="true"/>',
    )
    assert analyse(write_dir(tmp_path, {"cib.xml": cib}))[1] == []


def test_fencing_through_one_of_two_heartbeat_interfaces_is_a_warning(tmp_path: Path) -> None:
    # 10.0.0.50 is in eth0's network (the /24 around its ucast peers); eth1 still carries a link
    fence = swap(FENCE_ALPHA, "10.8.0.11", "10.0.0.50")
    cib = cib_xml(resources=fence + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE)
    _, findings = analyse(write_dir(tmp_path, {"cib.xml": cib}))
    f = only(findings, "fencing-via-heartbeat-link")
    assert f.severity == "warning"
    assert "fence device fence-alpha (10.0.0.50) is reached through eth0" in f.what
    assert "a node failure during that outage cannot be fenced" in f.why
    assert "management network of their own" in f.fix
    assert f.where == f"{tmp_path}/cib.xml:{primitive_line(cib, 'fence-alpha')}"


def test_fencing_through_the_only_heartbeat_link_is_a_spof(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "ucast eth1 10.0.1.1\nucast eth1 10.0.1.2\n", "")
    fence = swap(FENCE_ALPHA, "10.8.0.11", "10.0.0.50")
    cib = cib_xml(resources=fence + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE)
    _, findings = analyse(write_dir(tmp_path, {"ha.cf": hacf, "cib.xml": cib}))
    assert ids(findings) == {"single-heartbeat-link", "fencing-via-heartbeat-link"}
    f = next(f for f in findings if f.id == "fencing-via-heartbeat-link")
    assert f.severity == "spof"
    assert "which also carries every heartbeat link" in f.what
    assert "the fence request travels the same dead path" in f.why


def test_r1_stonith_host_on_the_heartbeat_network(tmp_path: Path) -> None:
    hacf = GOOD_HACF + "stonith_host * external/ipmi 10.0.1.77 admin secret\n"
    d = write_dir(tmp_path, {"ha.cf": hacf, "cib.xml": None, "haresources": GOOD_R1_HARESOURCES})
    _, findings = analyse(d)
    f = only(findings, "fencing-via-heartbeat-link")
    assert "reached through eth1" in f.what
    assert f.where == f"{tmp_path}/ha.cf:10"


def test_a_fence_device_given_by_name_cannot_be_placed(tmp_path: Path) -> None:
    fence = swap(FENCE_ALPHA, "10.8.0.11", "ipmi-alpha.example")
    cib = cib_xml(resources=fence + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE)
    _, findings = analyse(write_dir(tmp_path, {"cib.xml": cib}))
    f = only(findings, "fence-path-unknown")
    assert f.severity == "info"
    assert "ipmi-alpha.example" in f.what


def test_two_nodes_without_quorum_server_or_fence_race_delay(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "quorum_server 10.5.0.9:5403\n", "")
    _, findings = analyse(write_dir(tmp_path, {"ha.cf": hacf}))
    f = only(findings, "two-node-fence-race")
    assert f.severity == "spof"
    assert "each tries to fence the other at the same moment" in f.why
    assert "quorum server" in f.fix and "pcmk_delay_max" in f.fix
    assert f.where == f"{tmp_path}/ha.cf:1"


def test_a_three_node_cluster_needs_no_tie_breaker(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "quorum_server 10.5.0.9:5403\n", "")
    hacf = swap(hacf, "node alpha beta\n", "node alpha beta gamma\n")
    assert "two-node-fence-race" not in ids(analyse(write_dir(tmp_path, {"ha.cf": hacf}))[1])


def test_protocol_a_under_a_file_system(tmp_path: Path) -> None:
    _, findings = analyse(write_dir(tmp_path, {"drbd.conf": drbd_conf("A")}))
    f = only(findings, "async-replication")
    assert f.severity == "spof"
    assert f.what.startswith("DRBD resource r0 replicates with protocol A")
    assert "loses the writes still in flight" in f.why
    assert "set `protocol C;`" in f.fix
    assert f.where == f"{tmp_path}/drbd.conf:1:1"


def test_protocol_b_under_a_file_system_is_a_warning(tmp_path: Path) -> None:
    _, findings = analyse(write_dir(tmp_path, {"drbd.conf": drbd_conf("B")}))
    f = only(findings, "async-replication")
    assert f.severity == "warning"
    assert "losing both nodes at once" in f.why


def test_protocol_a_with_no_file_system_or_database_on_it_is_not_reported(
    tmp_path: Path,
) -> None:
    cib = cib_xml(resources=FENCE_ALPHA + FENCE_BETA + DRBD_PRIMITIVE, constraints="")
    d = write_dir(tmp_path, {"cib.xml": cib, "drbd.conf": drbd_conf("A")})
    assert analyse(d)[1] == []


def test_protocol_a_under_a_database_in_r1(tmp_path: Path) -> None:
    haresources = "alpha 10.0.0.100 drbddisk::r0 mysql\n"
    d = write_dir(
        tmp_path,
        {
            "ha.cf": GOOD_R1_HACF,
            "cib.xml": None,
            "haresources": haresources,
            "drbd.conf": drbd_conf("A"),
        },
    )
    assert only(analyse(d)[1], "async-replication").severity == "spof"


@pytest.mark.parametrize(
    "ops",
    [
        "",
        '<operations><op id="fsm" name="monitor" interval="0"/></operations>',
        '<operations><op id="fsm" name="monitor" interval="20s" enabled="false"/></operations>',
        '<operations><op id="fsm" name="start" interval="0" timeout="60s"/></operations>',
    ],
    ids=["no-ops", "interval-0", "disabled", "start-only"],
)
def test_a_resource_without_a_recurring_monitor(tmp_path: Path, ops: str) -> None:
    fs = swap(
        FS_PRIMITIVE,
        '<operations><op id="fsm" name="monitor" interval="20s"/></operations>',
        ops,
    )
    cib = cib_xml(resources=FENCE_ALPHA + FENCE_BETA + DRBD_PRIMITIVE + fs)
    _, findings = analyse(write_dir(tmp_path, {"cib.xml": cib}))
    f = only(findings, "no-monitor")
    assert f.severity == "spof"
    assert f.what == "resource fs (ocf:heartbeat:Filesystem) has no recurring monitor operation"
    assert "a crashed service stays down" in f.why
    assert '<op name="monitor"' in f.fix and "fs's operations" in f.fix
    assert f.where == f"{tmp_path}/cib.xml:{primitive_line(cib, 'fs')}"


def test_a_fence_device_without_a_monitor_is_a_warning(tmp_path: Path) -> None:
    fence = swap(
        FENCE_ALPHA, '<operations><op id="fam" name="monitor" interval="60s"/></operations>', ""
    )
    cib = cib_xml(resources=fence + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE)
    f = only(analyse(write_dir(tmp_path, {"cib.xml": cib}))[1], "no-monitor")
    assert f.severity == "warning"
    assert "found broken only when a node must be fenced" in f.why


def test_no_watchdog_anywhere(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "watchdog /dev/watchdog\n", "")
    d = write_dir(tmp_path, {"ha.cf": hacf, "watchdog.conf": None})
    f = only(analyse(d)[1], "no-watchdog")
    assert f.severity == "warning"
    assert f.what == "no watchdog: ha.cf has no watchdog directive and there is no watchdog.conf"
    assert "is never reset" in f.why
    assert "watchdog /dev/watchdog" in f.fix and "softdog" in f.fix


def test_a_watchdog_conf_without_a_device(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "watchdog /dev/watchdog\n", "")
    d = write_dir(tmp_path, {"ha.cf": hacf, "watchdog.conf": "interval = 10\n"})
    f = only(analyse(d)[1], "no-watchdog")
    assert "names no watchdog-device" in f.what
    assert f.where is not None and f.where.startswith(f"{tmp_path}/watchdog.conf")


@pytest.mark.parametrize(
    "files",
    [
        {"watchdog.conf": None},  # ha.cf's watchdog directive alone
        {"ha.cf": swap(GOOD_HACF, "watchdog /dev/watchdog\n", "")},  # watchdog.conf alone
    ],
    ids=["hacf", "watchdog.conf"],
)
def test_either_watchdog_setting_is_enough(tmp_path: Path, files: dict[str, str | None]) -> None:
    assert analyse(write_dir(tmp_path, files))[1] == []


def test_failback_when_stickiness_is_below_the_location_score(tmp_path: Path) -> None:
    cib = cib_xml(rsc_defaults="")
    f = only(analyse(write_dir(tmp_path, {"cib.xml": cib}))[1], "auto-failback")
    assert f.severity == "warning"
    assert f.what == (
        "fs prefers alpha (score 100) with resource-stickiness 0: "
        "it moves back to alpha whenever alpha returns"
    )
    assert "every failure costs two outages" in f.why
    assert "resource-stickiness" in f.fix and "auto_failback off" in f.fix
    assert f.where == f"{tmp_path}/cib.xml:{line_of(cib, 'rsc_location')}"


@pytest.mark.parametrize(
    ("setting", "words"), [("auto_failback on\n", "on"), ("", "legacy (heartbeat's default)")]
)
def test_r1_auto_failback(tmp_path: Path, setting: str, words: str) -> None:
    hacf = swap(GOOD_R1_HACF, "auto_failback off\n", setting)
    d = write_dir(tmp_path, {"ha.cf": hacf, "cib.xml": None, "haresources": GOOD_R1_HARESOURCES})
    f = only(analyse(d)[1], "auto-failback")
    assert f.what == f"auto_failback {words}: resources move back to their preferred node"
    assert f.where == (f"{tmp_path}/ha.cf:8" if setting else None)


def test_a_one_node_cluster(tmp_path: Path) -> None:
    hacf = swap(GOOD_HACF, "node alpha beta\n", "node alpha\n")
    hacf = swap(hacf, "ucast eth0 10.0.0.2\n", "")
    hacf = swap(hacf, "ucast eth1 10.0.1.2\n", "")
    drbd = None  # DRBD needs a peer
    cib = cib_xml(resources=FENCE_ALPHA, constraints="")
    d = write_dir(tmp_path, {"ha.cf": hacf, "cib.xml": cib, "drbd.conf": drbd})
    f = only(analyse(d)[1], "one-node")
    assert "nowhere to move the service" in f.why


def test_haresources_is_not_used_when_cib_xml_is_there(tmp_path: Path) -> None:
    config, findings = analyse(write_dir(tmp_path, {"haresources": "alpha mysql\n"}))
    assert findings == []
    assert not config.r1
    (hares,) = [f for f in config.files if f.name == "haresources"]
    assert (hares.status, hares.note) == ("not used", "cib.xml takes precedence")


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2 and an error naming the file (and line)


def test_a_malformed_hacf_names_the_file_and_line(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {"ha.cf": GOOD_HACF + "keepalive soon\n"})
    with pytest.raises(LoadError) as info:
        load_directory(str(d))
    assert any(p.startswith(f"{d}/ha.cf:10: ") for p in info.value.problems), info.value.problems


def test_a_hacf_that_is_not_text_names_the_file_and_line(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {})
    (d / "ha.cf").write_bytes(GOOD_HACF.encode() + b"# caf\xe9\n")
    with pytest.raises(LoadError) as info:
        load_directory(str(d))
    assert info.value.problems == [f"{d}/ha.cf:10: not UTF-8 text"]


def test_an_unreadable_hacf_names_the_file(tmp_path: Path) -> None:
    # root reads any mode, so "unreadable" is made the portable way: ha.cf is a directory
    d = write_dir(tmp_path, {"ha.cf": None})
    (d / "ha.cf").mkdir()
    with pytest.raises(LoadError) as info:
        load_directory(str(d))
    assert info.value.problems[0].startswith(f"{d}/ha.cf: cannot read")


def test_a_malformed_drbd_conf_names_the_file_and_line(tmp_path: Path) -> None:
    bad = swap(drbd_conf(), "protocol C;", "protocol D;")
    d = write_dir(tmp_path, {"drbd.conf": bad})
    with pytest.raises(LoadError) as info:
        load_directory(str(d))
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{d}/drbd.conf:2:"), info.value.problems


def test_every_bad_file_is_reported_and_nothing_is_analysed(tmp_path: Path) -> None:
    d = write_dir(
        tmp_path,
        {"ha.cf": GOOD_HACF + "bogus 1\n", "drbd.conf": "resource r0 {\n", "cib.xml": "<cib"},
    )
    with pytest.raises(LoadError) as info:
        load_directory(str(d))
    text = "\n".join(info.value.problems)
    for name in ("ha.cf:10", "drbd.conf", "cib.xml"):
        assert f"{d}/{name}" in text, text


def test_an_authkeys_others_can_read_is_refused(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {})
    (d / "authkeys").chmod(0o644)
    with pytest.raises(LoadError) as info:
        load_directory(str(d))
    assert info.value.problems[0].startswith(f"{d}/authkeys: mode 0644")


def test_a_missing_or_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_directory(str(tmp_path / "nope"))
    assert info.value.problems == [
        f"{tmp_path}/nope: not a directory (give the configuration directory)"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LoadError) as info:
        load_directory(str(empty))
    assert "nothing to analyse" in info.value.problems[0]
    assert "ha.cf" in info.value.problems[0]


def test_the_cli_exits_2_naming_the_file_and_line(tmp_path: Path) -> None:
    d = write_dir(tmp_path / "conf", {"drbd.conf": swap(drbd_conf(), "protocol C;", "bogus;")})
    result = run_cli("-c", str(d))
    assert result.returncode == EXIT_UNREADABLE == 2
    assert f"hastack analyze: {d}/drbd.conf:2:" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("-c", str(tmp_path / "missing"), "--json")
    assert missing.returncode == 2
    assert f"{tmp_path}/missing: not a directory" in missing.stderr
    assert json.loads(missing.stdout) == {
        "problems": [f"{tmp_path}/missing: not a directory (give the configuration directory)"]
    }


# ---------------------------------------------------------------------------------------------
# The estimate

# Everything broken that the model shows: one heartbeat link, one ping node, no watchdog, no
# quorum server, protocol A under the file system, the file system unmonitored, failback.
ALL_BAD: dict[str, str | None] = {
    "ha.cf": "node alpha beta\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\nping 10.9.0.1\n"
    "auto_failback on\n",
    "cib.xml": cib_xml(
        resources=FENCE_ALPHA
        + FENCE_BETA
        + DRBD_PRIMITIVE
        + swap(
            FS_PRIMITIVE,
            '<operations><op id="fsm" name="monitor" interval="20s"/></operations>',
            "",
        ),
        rsc_defaults="",
    ),
    "drbd.conf": drbd_conf("A"),
    "watchdog.conf": None,
}
ALL_BAD_IDS = {
    "single-heartbeat-link",
    "single-ping-node",
    "two-node-fence-race",
    "async-replication",
    "no-monitor",
    "no-watchdog",
    "auto-failback",
}


def test_the_estimate_matches_a_monte_carlo_run_of_the_same_model(tmp_path: Path) -> None:
    """The exact series/parallel value against a seeded simulation of the very model.

    Tolerance: |exact - simulated| <= 4 standard errors, the standard error taken from the
    simulation's 32 batch means. Batch means are valid when a batch (horizon/32 = 3.1e6 h)
    is much longer than the slowest component's cycle (a NIC: 500,000 h), which it is six
    times over. A correct model then lands within 4 standard errors except with probability
    ~1e-4 (t distribution, 31 degrees of freedom), and the seed makes the run replay exactly.
    The check must also be able to fail: the standard error is asserted below 5% of the
    unavailability, so an error in the model larger than ~20% of its downtime is caught
    (the last assertion shows that treating the shared eth0 parts as independent would be).
    """
    horizon = 1e8  # hours; ~170,000 component transitions, about a second
    d = write_dir(tmp_path / "bad", ALL_BAD)
    config, findings = analyse(d)
    model = service_model(config, findings)
    assert model.availability() == estimate(config, findings).availability
    run = simulate(model, random.Random(20240501), horizon)
    unavailability = 1 - model.availability()
    assert run.stderr < 0.05 * unavailability
    assert abs(run.availability - model.availability()) <= 4 * run.stderr

    good_config, good_findings = analyse(write_dir(tmp_path / "good", {}))
    good = service_model(good_config, good_findings)
    run = simulate(good, random.Random(7), horizon)
    assert run.stderr < 0.05 * (1 - good.availability())
    assert abs(run.availability - good.availability()) <= 4 * run.stderr

    # two links on eth0 share its NIC and switch: counting them twice (as if independent) is
    # a different number, outside the tolerance of a simulation of the shared parts
    hacf = swap(GOOD_HACF, "ucast eth1 10.0.1.1\nucast eth1 10.0.1.2\n", "bcast eth0\n")
    shared_config, shared_findings = analyse(write_dir(tmp_path / "shared", {"ha.cf": hacf}))
    shared = service_model(shared_config, shared_findings)
    run = simulate(shared, random.Random(11), horizon)
    assert abs(run.availability - shared.availability()) <= 4 * run.stderr
    assert abs(run.availability - _as_if_independent(shared)) > 4 * run.stderr


def _as_if_independent(block: Block) -> float:
    """The availability with every occurrence of a component counted as its own component."""
    if isinstance(block, Series):
        return math.prod(_as_if_independent(p) for p in block.parts)
    if isinstance(block, Parallel):
        assert block.need == 1
        return 1 - math.prod(1 - _as_if_independent(p) for p in block.parts)
    assert isinstance(block, Component)
    return block.availability()


def test_each_fix_adds_nines_and_all_fixes_add_the_most(tmp_path: Path) -> None:
    config, findings = analyse(write_dir(tmp_path, ALL_BAD))
    assert ids(findings) == ALL_BAD_IDS
    result = estimate(config, findings)
    assert {g.finding for g in result.fixes} == ALL_BAD_IDS
    assert result.not_modelled == ()
    for gain in result.fixes:
        assert gain.added_nines > 0, gain
        assert gain.availability > result.availability
        assert gain.downtime_saved_per_year > 0
        assert gain.nines == pytest.approx(result.nines + gain.added_nines)
    assert result.all_fixed is not None
    assert all(result.all_fixed.availability >= g.availability for g in result.fixes)
    assert result.all_fixed.added_nines >= max(g.added_nines for g in result.fixes)
    # the fixes are the well-built directory: fixing everything gives its availability
    good_config, good_findings = analyse(write_dir(tmp_path / "good", {}))
    good = estimate(good_config, good_findings)
    assert good.fixes == () and good.all_fixed is None
    assert result.all_fixed.availability == pytest.approx(good.availability, rel=1e-12)


def test_a_finding_the_model_cannot_show_is_not_given_a_zero_gain(tmp_path: Path) -> None:
    # a fence device without a monitor (a warning) has no part in the model: listing
    # "+0.00 nines" for it would claim a gain was estimated; it is listed as not modelled
    fence = swap(
        FENCE_ALPHA, '<operations><op id="fam" name="monitor" interval="60s"/></operations>', ""
    )
    cib = cib_xml(resources=fence + FENCE_BETA + DRBD_PRIMITIVE + FS_PRIMITIVE)
    config, findings = analyse(write_dir(tmp_path, {"cib.xml": cib}))
    result = estimate(config, findings)
    assert (result.fixes, result.all_fixed, result.not_modelled) == ((), None, ("no-monitor",))


def _hacf_only_dir(tmp_path: Path) -> Path:
    """ha.cf and authkeys only: two nodes, two links on two interfaces, two ping nodes."""
    return write_dir(
        tmp_path,
        {"ha.cf": GOOD_R1_HACF, "cib.xml": None, "drbd.conf": None, "watchdog.conf": None},
    )


def _hacf_only_availability(server: tuple[float, float], os_: tuple[float, float]) -> float:
    """By hand: two nodes (server, watchdog-reset OS) in parallel, two heartbeat media
    (NIC, switch) in parallel, two ping nodes (counted as switches) in parallel."""

    def a(mttf: float, mttr: float) -> float:
        return mttf / (mttf + mttr)

    nic, switch = DEFAULT_FIGURES["nic"], DEFAULT_FIGURES["network_switch"]
    a_sw = a(switch.mttf_hours, switch.mttr_hours)
    node = a(*server) * a(*os_)
    medium = a(nic.mttf_hours, nic.mttr_hours) * a_sw
    return (1 - (1 - node) ** 2) * (1 - (1 - medium) ** 2) * (1 - (1 - a_sw) ** 2)


def test_the_estimate_is_the_series_parallel_formula(tmp_path: Path) -> None:
    config, findings = analyse(_hacf_only_dir(tmp_path))
    assert findings == []
    server, os_watchdog = DEFAULT_FIGURES["server"], analyze_figures()["os_watchdog"]
    expected = _hacf_only_availability(
        (server.mttf_hours, server.mttr_hours), (os_watchdog.mttf_hours, os_watchdog.mttr_hours)
    )
    assert estimate(config, findings).availability == pytest.approx(expected, rel=1e-12)


def test_figures_overrides_change_the_estimate_as_expected(tmp_path: Path) -> None:
    d = _hacf_only_dir(tmp_path / "conf")
    figures = tmp_path / "figures.toml"
    figures.write_text(
        '[server]\nmttf = "1000h"\nmttr = 100\n\n[os_watchdog]\nmttf = "500h"\nmttr = "30m"\n'
    )
    config, findings = analyse(d)
    default = estimate(config, findings).availability
    overridden = estimate(config, findings, analyze_figures(str(figures))).availability
    assert overridden == pytest.approx(_hacf_only_availability((1000, 100), (500, 0.5)), rel=1e-12)
    assert overridden < default  # worse servers and OS: a worse service

    # an override of one figure keeps the other: only the server's MTTR, made shorter
    figures.write_text("[server]\nmttr = 1\n")
    shorter = estimate(config, findings, analyze_figures(str(figures))).availability
    assert shorter > default

    result = run_cli("-c", str(d), "--json", "--figures", str(figures))
    assert result.returncode == EXIT_CLEAN, result.stderr
    report = json.loads(result.stdout)["estimate"]
    assert report["availability"] == pytest.approx(shorter, rel=1e-12)
    assert report["figures"]["server"]["mttr_hours"] == 1
    assert report["figures"]["server"]["mttf_hours"] == DEFAULT_FIGURES["server"].mttf_hours


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[disk]\nmtbf = "3h"\n', "[disk]: unknown key(s) mtbf; allowed: mttf, mttr, note"),
        ('[disk]\nmttf = "soon"\n', "[disk] mttf"),
        ("[disk]\nmttr = -1\n", "[disk] mttr: must be longer than zero"),
        ("[flux_capacitor]\nmttf = 10\n", "[flux_capacitor]: a new kind of component needs"),
        ("[disk\n", "not valid TOML"),
    ],
    ids=["unknown-key", "bad-duration", "negative", "new-kind-half", "not-toml"],
)
def test_a_bad_figures_file_names_the_file_and_key(
    tmp_path: Path, toml: str, expected: str
) -> None:
    figures = tmp_path / "figures.toml"
    figures.write_text(toml)
    with pytest.raises(ModelError) as info:
        analyze_figures(str(figures))
    assert str(info.value).startswith(f"{figures}: ")
    assert expected in str(info.value)


def test_the_cli_rejects_a_bad_or_missing_figures_file(tmp_path: Path) -> None:
    d = write_dir(tmp_path / "conf", {})
    figures = tmp_path / "figures.toml"
    figures.write_text('[disk]\nmtbf = "3h"\n')
    result = run_cli("-c", str(d), "--figures", str(figures))
    assert result.returncode == EXIT_UNREADABLE
    assert f"{figures}: [disk]: unknown key(s) mtbf" in result.stderr
    result = run_cli("-c", str(d), "--figures", str(tmp_path / "none.toml"))
    assert result.returncode == EXIT_UNREADABLE
    assert f"{tmp_path}/none.toml: cannot read the figures file" in result.stderr


# ---------------------------------------------------------------------------------------------
# The CLI


def test_add_commands_wires_analyze_with_its_options(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["analyze", "-c", str(tmp_path), "--json", "--figures", "f.toml"])
    assert (args.config, args.json, args.figures) == (str(tmp_path), True, "f.toml")
    with pytest.raises(SystemExit):  # -c is required
        parser.parse_args(["analyze"])


def test_the_cli_on_a_directory_full_of_spofs(tmp_path: Path) -> None:
    d = write_dir(tmp_path, ALL_BAD)
    result = run_cli("-c", str(d), "--json")
    assert result.returncode == EXIT_SPOF == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["directory"] == str(d)
    assert {f["id"] for f in report["findings"]} == ALL_BAD_IDS
    assert report["spofs"] == sum(1 for f in report["findings"] if f["severity"] == "spof") == 5
    for f in report["findings"]:
        assert set(f) == {"id", "severity", "what", "why", "fix", "where"}
        assert f["why"] and f["fix"]
    severities = [f["severity"] for f in report["findings"]]
    assert severities == sorted(severities, key=["spof", "warning", "info"].index)
    est = report["estimate"]
    assert 0 < est["availability"] < 1
    assert est["nines"] == pytest.approx(-math.log10(1 - est["availability"]))
    assert est["downtime_per_year_seconds"] == pytest.approx(
        (1 - est["availability"]) * 365 * 86400
    )
    assert {g["finding"] for g in est["fixes"]} == ALL_BAD_IDS
    assert all(g["added_nines"] > 0 for g in est["fixes"])
    assert est["all_fixed"]["finding"] == "all"
    assert all(est["all_fixed"]["availability"] >= g["availability"] for g in est["fixes"])
    assert est["not_modelled"] == []
    assert est["model"]["series"] == "service"
    assert set(est["figures"]) >= set(DEFAULT_FIGURES) | set(ANALYZE_FIGURES)
    # the same numbers as the library computes in-process
    config, findings = analyse(d)
    assert est["availability"] == estimate(config, findings).availability

    text = run_cli("-c", str(d))
    assert text.returncode == EXIT_SPOF
    assert "5 single point(s) of failure, 2 other finding(s)" in text.stdout
    assert "(single-heartbeat-link)" in text.stdout
    assert "every fix" in text.stdout


def test_the_cli_on_the_well_built_directory_exits_0(tmp_path: Path) -> None:
    result = run_cli("-c", str(write_dir(tmp_path, {})))
    assert result.returncode == EXIT_CLEAN == 0, result.stderr
    assert "no single point of failure found in what was read" in result.stdout
    assert result.stderr == ""


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    # no watchdog is a warning, not a SPOF: the exit status counts SPOFs only
    hacf = swap(GOOD_HACF, "watchdog /dev/watchdog\n", "")
    d = write_dir(tmp_path, {"ha.cf": hacf, "watchdog.conf": None})
    result = run_cli("-c", str(d), "--json")
    assert result.returncode == EXIT_CLEAN, result.stderr
    report = json.loads(result.stdout)
    assert report["spofs"] == 0
    assert [f["id"] for f in report["findings"]] == ["no-watchdog"]


# ---------------------------------------------------------------------------------------------
# Real sample configurations. The repository ships none (no examples/; `git ls-files` holds no
# ha.cf, cib.xml, drbd.conf or watchdog.conf), so these are the ones this machine has: the
# starter directory `hastack config init` writes, and the samples of Debian's heartbeat,
# watchdog and drbd-utils packages.

DEBIAN_HACF = Path("/usr/share/doc/heartbeat/ha.cf.gz")
DEBIAN_WATCHDOG = Path("/etc/watchdog.conf")
DEBIAN_DRBD = Path("/usr/share/doc/drbd-utils/examples/drbd.conf.example")


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not on this machine (install its Debian package to run this)")


def test_the_directory_hastack_config_init_writes(tmp_path: Path) -> None:
    d = tmp_path / "ha.d"
    command = [PYTHON, "-m", "hastack", "config", "init", "-c", str(d)]
    init = subprocess.run(
        [*command, "--node", "alpha", "--node", "beta"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert init.returncode == 0, init.stderr
    result = run_cli("-c", str(d), "--json")
    assert result.returncode == EXIT_SPOF, result.stderr
    report = json.loads(result.stdout)
    # a starter file: one bcast link on eth0, no fencing, no watchdog; its two_node on is the
    # fence race delay, so that rule stays silent
    assert [(f["id"], f["severity"]) for f in report["findings"]] == [
        ("single-heartbeat-link", "spof"),
        ("no-fencing", "spof"),
        ("no-watchdog", "warning"),
    ]
    assert "bcast eth0" in report["findings"][0]["what"]


def test_debian_watchdog_conf_names_no_device(tmp_path: Path) -> None:
    _need(DEBIAN_WATCHDOG)
    shutil.copy(DEBIAN_WATCHDOG, tmp_path / "watchdog.conf")
    config, findings = analyse(tmp_path)
    assert config.watchdog is not None
    if config.watchdog.watchdog_device:
        pytest.skip(f"{DEBIAN_WATCHDOG} was edited on this machine: it names a device")
    f = only(findings, "no-watchdog")
    assert f.what.startswith(f"{tmp_path}/watchdog.conf names no watchdog-device")


def test_debian_hacf_sample_is_a_template_not_a_configuration(tmp_path: Path) -> None:
    _need(DEBIAN_HACF)
    (tmp_path / "ha.cf").write_bytes(gzip.decompress(DEBIAN_HACF.read_bytes()))
    with pytest.raises(LoadError) as info:
        load_directory(str(tmp_path))
    # every directive is commented out: no node, no link, and it says which to add
    assert info.value.problems[0].startswith(f"{tmp_path}/ha.cf: no node directive")
    assert any("no heartbeat link" in p for p in info.value.problems)


def test_debian_drbd_example_is_drbd_9_and_is_refused_line_by_line(tmp_path: Path) -> None:
    _need(DEBIAN_DRBD)
    shutil.copy(DEBIAN_DRBD, tmp_path / "drbd.conf")
    with pytest.raises(LoadError) as info:
        load_directory(str(tmp_path))
    problems = info.value.problems
    assert problems and all(p.startswith(f"{tmp_path}/drbd.conf:") for p in problems)
    assert any("DRBD 9 only" in p for p in problems)


# ---------------------------------------------------------------------------------------------
# Fuzz: whatever ha.cf holds, analyse reads it or says why not; it never crashes

_HACF_LINES = st.sampled_from(
    [
        "node gamma",
        "ucast eth0 10.0.0.2",
        "ucast eth1 10.0.1.1",
        "bcast eth0",
        "bcast eth2",
        "mcast eth1 239.0.0.1 694 1 0",
        "serial /dev/ttyS0",
        "ping 10.9.0.1",
        "ping 10.9.0.1 10.9.0.2",
        "ping_group gw 10.9.0.3",
        "watchdog /dev/watchdog",
        "auto_failback on",
        "auto_failback off",
        "two_node on",
        "quorum_server 10.5.0.9:5403",
        "stonith_host * external/ipmi 10.0.0.50 admin secret",
        "stonith_host * external/ipmi 10.8.0.50 admin secret",
        "# a comment",
        "",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # real directives (so that most files load and reach the rules), and half the time a line
    # of noise somewhere among them
    lines=st.lists(_HACF_LINES, unique=True, max_size=10),
    noise=st.none() | st.tuples(st.integers(0, 10), st.text(max_size=30)),
    protocol=st.sampled_from(["A", "B", "C"]),
    r1=st.booleans(),
)
def test_any_hacf_is_analysed_or_refused_with_the_file_named(
    lines: list[str], noise: tuple[int, str] | None, protocol: str, r1: bool
) -> None:
    if noise is not None:
        lines = [*lines[: noise[0]], noise[1], *lines[noise[0] :]]
    with tempfile.TemporaryDirectory() as tmp:
        # ha.cf needs a node line and a link; the fuzz starts from them to get past that check
        text = "node alpha beta\nucast eth0 10.0.0.1\n" + "\n".join(lines) + "\n"
        files: dict[str, str | None] = {"ha.cf": text}
        files["drbd.conf"] = drbd_conf(protocol)
        if r1:
            files.update({"cib.xml": None, "haresources": GOOD_R1_HARESOURCES})
        d = write_dir(Path(tmp), files)
        try:
            config = load_directory(str(d))
        except LoadError as exc:
            assert exc.problems
            assert all(p.startswith(str(d)) for p in exc.problems), exc.problems
            return
        findings = find_spofs(config)
        for f in findings:
            assert f.severity in ("spof", "warning", "info") and f.why and f.fix
        result = estimate(config, findings)
        assert 0 < result.availability <= 1
        for gain in result.fixes:
            assert gain.added_nines > 0
            assert result.all_fixed is not None
            assert result.all_fixed.availability >= gain.availability
