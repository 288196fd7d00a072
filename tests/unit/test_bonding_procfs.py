"""/proc/net/bonding parsing and the health verdict, over the fixtures in tests/fixtures/bonding
(one per mode and state, and the seed's own example) and over malformed and arbitrary text."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.bonding.procfs import (
    BondParseError,
    BondStatus,
    Health,
    assess,
    list_bonds,
    live_slaves,
    parse_bond_status,
    read_bond_status,
    with_slave,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bonding"


SEED = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "seed"
    / "high-availability-in-linux-systems.txt"
)  # ../shared beside the clone


def load(name: str) -> BondStatus:
    return read_bond_status(FIXTURES / f"{name}.txt")


def seed_example() -> str:
    """The seed's /proc/net/bonding/bond0 example, read from the seed itself (not copied into
    the project): from its version line to the end of its code block."""
    if not SEED.is_file():
        reason = f"{SEED} is absent (the seed is not beside this checkout)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    text = SEED.read_text()
    start = text.index("Ethernet Channel Bonding Driver:")
    return text[start : text.index("```", start)]


def mii(status: BondStatus) -> dict[str, str | None]:
    return {s.interface: s.mii_status for s in status.slaves}


def failures(status: BondStatus) -> dict[str, int | None]:
    return {s.interface: s.link_failure_count for s in status.slaves}


# fixture: mode, active slave, MII per slave, link failure counts, health, live slaves
EXPECTED = {
    "balance-rr": (
        "balance-rr",
        None,
        {"eth0": "up", "eth1": "up"},
        {"eth0": 0, "eth1": 0},
        Health.HEALTHY,
        ("eth0", "eth1"),
    ),
    "active-backup-arp": (
        "active-backup",
        "eth0",
        {"eth0": "up", "eth1": "up"},
        {"eth0": 0, "eth1": 0},
        Health.HEALTHY,
        ("eth0", "eth1"),
    ),
    "active-backup-degraded": (
        "active-backup",
        "eth1",
        {"eth0": "down", "eth1": "up"},
        {"eth0": 3, "eth1": 0},
        Health.DEGRADED,
        ("eth1",),
    ),
    "active-backup-down": (
        "active-backup",
        None,
        {"eth0": "down", "eth1": "down"},
        {"eth0": 4, "eth1": 2},
        Health.DOWN,
        (),
    ),
    "balance-xor": (
        "balance-xor",
        None,
        {"eth0": "up", "eth1": "up"},
        {"eth0": 0, "eth1": 0},
        Health.HEALTHY,
        ("eth0", "eth1"),
    ),
    "broadcast": (
        "broadcast",
        None,
        {"eth0": "up", "eth1": "up"},
        {"eth0": 0, "eth1": 0},
        Health.HEALTHY,
        ("eth0", "eth1"),
    ),
    "802.3ad": (
        "802.3ad",
        None,
        {"eth0": "up", "eth1": "up"},
        {"eth0": 0, "eth1": 0},
        Health.HEALTHY,
        ("eth0", "eth1"),
    ),
    "802.3ad-split": (
        "802.3ad",
        None,
        {"eth0": "up", "eth1": "up"},
        {"eth0": 0, "eth1": 0},
        Health.DEGRADED,
        ("eth0",),
    ),
    "802.3ad-no-aggregator": ("802.3ad", None, {}, {}, Health.DOWN, ()),
    "balance-tlb": (
        "balance-tlb",
        "eth0",
        {"eth0": "up", "eth1": "up", "eth2": "going back"},
        {"eth0": 0, "eth1": 0, "eth2": 1},
        Health.DEGRADED,
        ("eth0", "eth1"),
    ),
    "balance-alb": (
        "balance-alb",
        "eth1",
        {"eth0": "up", "eth1": "up"},
        {"eth0": 0, "eth1": 0},
        Health.HEALTHY,
        ("eth0", "eth1"),
    ),
}


def test_every_fixture_file_is_covered() -> None:
    assert {p.stem for p in FIXTURES.glob("*.txt")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_into_mode_slaves_failures_and_verdict(name: str) -> None:
    mode, active, slaves, counts, health, live = EXPECTED[name]
    status = load(name)
    verdict = assess(status)
    assert status.name == f"{name}.txt"
    assert status.mode == mode
    assert status.active_slave == active
    assert mii(status) == slaves
    assert failures(status) == counts
    assert verdict.health is health, verdict
    assert verdict.live_slaves == live
    assert status.unknown_lines == ()
    if health is not Health.HEALTHY:
        assert verdict.reasons, "a verdict that is not healthy says why"


def test_the_seeds_v3_3_0_example_has_no_speed_or_duplex_but_its_polling_interval() -> None:
    status = parse_bond_status(seed_example(), "bond0", str(SEED))
    assert status.driver_version == "v3.3.0 (June 10, 2008)"
    assert status.mode == "balance-rr"
    assert status.mode_description == "load balancing (round-robin)"
    assert status.active_slave == "eth0"
    assert status.miimon_ms == 1000
    assert status.updelay_ms == 0 and status.downdelay_ms == 0
    assert [s.interface for s in status.slaves] == ["eth1", "eth0"]
    assert mii(status) == {"eth1": "up", "eth0": "up"}
    assert failures(status) == {"eth1": 1, "eth0": 1}
    assert all(s.speed_mbps is None and s.duplex is None for s in status.slaves)
    assert status.unknown_lines == ()
    verdict = assess(status)
    assert verdict.health is Health.HEALTHY and verdict.live_slaves == ("eth1", "eth0")


def test_active_backup_with_arp_monitoring_reads_targets_primary_and_fail_over_mac() -> None:
    status = load("active-backup-arp")
    assert status.fail_over_mac == "active"
    assert status.primary == "eth0" and status.primary_reselect == "always"
    assert status.miimon_ms == 0
    assert status.arp_interval_ms == 100 and status.arp_missed_max == 2
    assert status.arp_ip_targets == ("192.168.2.8", "192.168.2.10")
    assert status.ns_ip6_targets == ("2001:db8::8", "2001:db8::10")
    verdict = assess(status)
    # ARP monitoring counts as link monitoring: no "no link monitoring" warning
    assert verdict.warnings == ()


def test_one_live_slave_is_degraded_a_single_point_of_failure_not_down() -> None:
    status = load("active-backup-degraded")
    verdict = assess(status)
    assert verdict.health is Health.DEGRADED
    assert "single point of failure" in verdict.reasons[0]
    assert "not a failover" in verdict.reasons[0]
    assert "eth0 is down" in verdict.reasons
    assert status.slave("eth0") is not None and status.slave("eth0").speed_mbps is None  # type: ignore[union-attr]
    assert status.updelay_ms == 200 and status.downdelay_ms == 200


def test_a_bond_with_every_slave_down_is_down() -> None:
    verdict = assess(load("active-backup-down"))
    assert verdict.health is Health.DOWN
    assert verdict.reasons[0] == "no slave is up"


def test_a_bond_whose_carrier_is_down_is_down_even_with_slaves_up() -> None:
    status = load("balance-rr")
    verdict = assess(BondStatus(**{**status.__dict__, "mii_status": "down"}))
    assert verdict.health is Health.DOWN
    assert "no carrier" in verdict.reasons[0]


def test_802_3ad_reads_the_lacp_section_aggregator_and_both_lacpdus() -> None:
    status = load("802.3ad")
    assert status.transmit_hash_policy == "layer3+4"
    assert status.lacp is not None
    assert status.lacp.lacp_active is True and status.lacp.lacp_rate == "fast"
    assert status.lacp.ad_select == "stable" and status.lacp.system_priority == 65535
    aggregator = status.lacp.active_aggregator
    assert aggregator is not None
    assert (aggregator.aggregator_id, aggregator.ports) == (1, 2)
    assert (aggregator.actor_key, aggregator.partner_key) == (9, 1001)
    assert aggregator.partner_mac == "00:1c:73:aa:bb:cc"
    eth1 = status.slave("eth1")
    assert eth1 is not None and eth1.aggregator_id == 1
    assert eth1.actor is not None and eth1.actor.key == 9 and eth1.actor.port_number == 2
    assert eth1.partner is not None and eth1.partner.key == 1001
    assert eth1.partner.system_mac == "00:1c:73:aa:bb:cc" and eth1.partner.port_state == 63


def test_802_3ad_slave_in_another_aggregator_is_up_but_carries_nothing() -> None:
    status = load("802.3ad-split")
    assert [s.interface for s in live_slaves(status)] == ["eth0"]
    eth1 = status.slave("eth1")
    assert eth1 is not None and eth1.up and eth1.aggregator_id == 2
    assert eth1.actor_churn_state == "churned"
    reasons = assess(status).reasons
    assert any("eth1 is up but not in the active aggregator (2 vs 1)" in r for r in reasons)


def test_802_3ad_slave_in_no_aggregator_n_a_carries_nothing() -> None:
    # the kernel prints "Aggregator ID: N/A" for a slave not attached to any aggregator
    text = (FIXTURES / "802.3ad.txt").read_text()
    eth1 = text.index("Slave Interface: eth1")
    text = text[:eth1] + text[eth1:].replace("Aggregator ID: 1", "Aggregator ID: N/A", 1)
    status = parse_bond_status(text, "bond0")
    slave = status.slave("eth1")
    assert slave is not None and slave.aggregator_id is None and slave.no_aggregator
    verdict = assess(status)
    assert verdict.live_slaves == ("eth0",)
    assert verdict.health is Health.DEGRADED
    assert "eth1 is up but not in the active aggregator (N/A vs 1): it carries no traffic" in (
        verdict.reasons
    )


def test_802_3ad_slave_without_an_aggregator_line_gets_the_benefit_of_the_doubt() -> None:
    text = "\n".join(
        line
        for line in (FIXTURES / "802.3ad.txt").read_text().splitlines()
        if not line.startswith("Aggregator ID:")
    )
    status = parse_bond_status(text, "bond0")
    assert all(s.aggregator_id is None and not s.no_aggregator for s in status.slaves)
    assert assess(status).health is Health.HEALTHY


def test_802_3ad_without_an_active_aggregator_has_none_and_is_down() -> None:
    status = load("802.3ad-no-aggregator")
    assert status.lacp is not None and status.lacp.active_aggregator is None
    assert status.mii_status == "down"
    # a slave that is up but the bond has no aggregator carries nothing either
    with_eth0 = parse_bond_status(
        (FIXTURES / "802.3ad-no-aggregator.txt").read_text()
        + "\nSlave Interface: eth0\nMII Status: up\nAggregator ID: 1\n",
        "bond0",
    )
    assert live_slaves(with_eth0) == ()
    assert assess(with_eth0).health is Health.DOWN


def test_balance_tlb_slave_going_back_degrades_the_bond() -> None:
    verdict = assess(load("balance-tlb"))
    assert verdict.health is Health.DEGRADED
    assert verdict.reasons == ("eth2 is going back",)


def test_balance_alb_reads_primary_reselect_and_half_duplex() -> None:
    status = load("balance-alb")
    assert status.primary == "eth1" and status.primary_reselect == "better"
    eth0 = status.slave("eth0")
    assert eth0 is not None and eth0.speed_mbps == 100 and eth0.duplex == "half"


def test_active_backup_whose_active_slave_is_not_live_is_degraded() -> None:
    status = with_slave(load("active-backup-arp"), "eth0", mii_status="down")
    verdict = assess(status)
    assert verdict.health is Health.DEGRADED
    assert "active slave is eth0, not one of the live slaves" in verdict.reasons


def test_no_link_monitoring_is_a_warning_not_a_change_of_health() -> None:
    text = (
        (FIXTURES / "balance-rr.txt")
        .read_text()
        .replace("MII Polling Interval (ms): 100", "MII Polling Interval (ms): 0")
    )
    verdict = assess(parse_bond_status(text, "bond0"))
    assert verdict.health is Health.HEALTHY
    assert any("no link monitoring" in w for w in verdict.warnings)


def test_unknown_lines_are_kept_and_reported_not_fatal() -> None:
    text = (
        (FIXTURES / "balance-rr.txt")
        .read_text()
        .replace("Slave queue ID: 0\n", "Slave queue ID: 0\nSomething New: 42\n", 1)
    )
    status = parse_bond_status(text, "bond0")
    assert len(status.unknown_lines) == 1
    unknown = status.unknown_lines[0]
    assert (unknown.text, unknown.section) == ("Something New: 42", "slave eth0")
    assert text.splitlines()[unknown.line - 1] == "Something New: 42"
    verdict = assess(status)
    assert verdict.health is Health.HEALTHY
    assert any("Something New" in w for w in verdict.warnings)


def test_to_json_is_plain_data() -> None:
    import json

    document = json.loads(json.dumps(load("802.3ad").to_json()))
    assert document["mode"] == "802.3ad"
    assert document["lacp"]["active_aggregator"]["aggregator_id"] == 1
    assert [s["interface"] for s in document["slaves"]] == ["eth0", "eth1"]


def test_list_bonds_lists_the_files_sorted(tmp_path: Path) -> None:
    for name in ("bond1", "bond0"):
        (tmp_path / name).write_text("")
    (tmp_path / "subdir").mkdir()
    assert list_bonds(tmp_path) == ["bond0", "bond1"]


# --------------------------------------------------------------------------------------------
# Malformed input: BondParseError naming the file and the line

GOOD = (FIXTURES / "active-backup-degraded.txt").read_text()


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "Bonding Mode: fault-tolerance (active-backup)",
            "Bonding Mode: fault-tolerance (active-forward)",
            "unknown bonding mode",
        ),
        ("MII Status: down", "MII Status: sideways", "is not a link state"),
        ("Link Failure Count: 3", "Link Failure Count: three", "is not a whole number"),
        ("Speed: 1000 Mbps", "Speed: fast", "is not a speed"),
        ("Duplex: full", "Duplex: quarter", "is not a duplex"),
        ("MII Polling Interval (ms): 100", "MII Polling Interval (ms): 1e2", "whole number"),
        ("Primary Slave: None", "Primary Slave: eth0 eth1", "not an interface name"),
        ("Slave Interface: eth1", "Slave Interface: eth0", "listed twice"),
        ("Up Delay (ms): 200", "Up Delay (ms): 200\nUp Delay (ms): 300", "a second 'Up Delay"),
    ],
)
def test_malformed_values_name_the_file_and_line(old: str, new: str, message: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    where = new.splitlines()[-1]
    with pytest.raises(BondParseError) as caught:
        parse_bond_status(text, "bond0", "/proc/net/bonding/bond0")
    error = caught.value
    expected_line = (
        text.splitlines().index(where) + 1 if where in text.splitlines() else line_of(text, where)
    )
    if "listed twice" in message or "a second" in message:
        # the duplicate, not the first occurrence
        expected_line = [i for i, line in enumerate(text.splitlines(), 1) if line == where][-1]
    assert error.source == "/proc/net/bonding/bond0"
    assert error.line == expected_line
    assert str(error).startswith(f"/proc/net/bonding/bond0:{expected_line}: ")
    assert message in str(error)


def test_an_unknown_mode_error_lists_the_known_modes() -> None:
    text = GOOD.replace("fault-tolerance (active-backup)", "warp drive")
    with pytest.raises(BondParseError, match=r"known: .*'fault-tolerance \(active-backup\)'"):
        parse_bond_status(text, "bond0")


def test_a_bad_arp_target_names_the_line() -> None:
    text = (FIXTURES / "active-backup-arp.txt").read_text().replace("192.168.2.10", "192.168.2")
    with pytest.raises(BondParseError, match="list of IPv4 addresses") as caught:
        parse_bond_status(text, "bond0", "fixture")
    assert caught.value.line == line_of(text, "ARP IP target/s")


def test_a_file_without_a_mode_line_is_not_a_bonding_status_file() -> None:
    with pytest.raises(BondParseError, match="no 'Bonding Mode:' line") as caught:
        parse_bond_status("hello\nworld\n", "bond0", "/tmp/x")
    assert caught.value.line is None and str(caught.value).startswith("/tmp/x: ")


def test_the_default_source_is_the_proc_file() -> None:
    with pytest.raises(BondParseError, match=r"^/proc/net/bonding/bond7: "):
        parse_bond_status("", "bond7")


def test_read_bond_status_names_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "bond0"
    path.write_bytes(GOOD.replace("MII Status: down", "MII Status: \xff").encode("latin-1"))
    with pytest.raises(BondParseError) as caught:
        read_bond_status(path)
    assert caught.value.source == str(path)
    assert caught.value.line == line_of(GOOD, "MII Status: down")


# --------------------------------------------------------------------------------------------
# Fuzz: arbitrary text never raises anything but BondParseError

KEYS = [
    "Ethernet Channel Bonding Driver",
    "Bonding Mode",
    "Primary Slave",
    "Currently Active Slave",
    "MII Status",
    "MII Polling Interval (ms)",
    "ARP IP target/s (n.n.n.n form)",
    "NS IPv6 target/s (xx::xx form)",
    "Slave Interface",
    "Speed",
    "Duplex",
    "Link Failure Count",
    "Aggregator ID",
    "LACP active",
    "port key",
    "Transmit Hash Policy",
]
VALUES = [
    "up",
    "down",
    "None",
    "eth0",
    "1000 Mbps",
    "full",
    "3",
    "-1",
    "N/A",
    "fault-tolerance (active-backup)",
    "IEEE 802.3ad Dynamic link aggregation",
    "load balancing (round-robin) (fail_over_mac active)",
    "eth0 (primary_reselect always)",
    "10.0.0.1, 10.0.0.2",
    "::1",
    "",
]
FIXED_LINES = [
    "802.3ad info",
    "Active Aggregator Info:",
    "bond bond0 has no active aggregator",
    "details actor lacp pdu:",
    "details partner lacp pdu:",
]
line = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda indent, key, value: f"{indent}{key}: {value}",
        st.sampled_from(["", "\t", "    "]),
        st.sampled_from(KEYS),
        st.one_of(st.sampled_from(VALUES), st.text(max_size=15)),
    ),
    st.sampled_from(FIXED_LINES),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(line, max_size=30))
def test_arbitrary_lines_raise_only_bond_parse_error(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        status = parse_bond_status(text, "bond0")
    except BondParseError as exc:
        assert str(exc).startswith("/proc/net/bonding/bond0")
        return
    verdict = assess(status)  # what parses can be judged
    assert verdict.health in tuple(Health)
    status.to_json()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_raises_only_bond_parse_error(text: str) -> None:
    with contextlib.suppress(BondParseError):
        assess(parse_bond_status(text, "bond0"))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_fixture_with_one_line_mangled_raises_only_bond_parse_error(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(EXPECTED)))
    lines = (FIXTURES / f"{name}.txt").read_text().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(st.text(max_size=40))
    with contextlib.suppress(BondParseError):
        assess(parse_bond_status("\n".join(lines), "bond0"))
