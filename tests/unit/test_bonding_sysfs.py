"""Bond configuration through sysfs: validation, the order of the writes, and applying them to
a fixture sysfs tree in tmp_path (this machine's real /sys is never touched)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from hastack.bonding.sysfs import (
    MASTERS,
    BondConfig,
    BondConfigError,
    CurrentBond,
    Write,
    apply,
    bonding_path,
    parse_mode,
    plan,
    read_current,
    validate,
    write_value,
)

OPTIONS = (
    "mode",
    "miimon",
    "updelay",
    "downdelay",
    "arp_interval",
    "arp_ip_target",
    "fail_over_mac",
    "num_grat_arp",
    "slaves",
    "primary",
)

AB_UP = CurrentBond(
    name="bond0", mode="active-backup", miimon=100, slaves=("eth0", "eth1"), flags=0x1003
)


def ops(writes: list[Write]) -> list[tuple[str, str]]:
    """(option, value) per write: the option is the file name (bonding_masters, flags, ...)."""
    return [(w.path.name, w.value) for w in writes]


# --------------------------------------------------------------------------------------------
# Validation: each error names the option and what is allowed


@pytest.mark.parametrize(
    ("config", "current", "needles"),
    [
        (
            BondConfig("bond0", mode="fast"),
            None,
            ["unknown bonding mode 'fast'", "active-backup (1)"],
        ),
        (BondConfig("bond0", mode="7"), None, ["unknown bonding mode '7'", "balance-alb (6)"]),
        (
            BondConfig("bond0", mode="active-backup", fail_over_mac="sometimes"),
            None,
            ["unknown fail_over_mac 'sometimes'", "none (0), active (1), follow (2)"],
        ),
        (BondConfig("bond0", mode="balance-rr", miimon=-1), None, ["miimon must be 0 (off)"]),
        (
            BondConfig("bond0", mode="balance-rr", downdelay=-100, miimon=100),
            None,
            ["downdelay must be 0 (off) or a positive number"],
        ),
        (
            BondConfig(
                "bond0",
                mode="active-backup",
                miimon=100,
                arp_interval=100,
                arp_ip_targets=("10.0.0.1",),
            ),
            None,
            ["miimon and arp_interval are both set", "give one of them"],
        ),
        (
            BondConfig("bond0", mode="active-backup", updelay=200),
            None,
            ["updelay needs MII monitoring", "set miimon"],
        ),
        (
            BondConfig("bond0", mode="active-backup", miimon=100, updelay=250),
            None,
            ["updelay 250 is not a multiple of miimon 100", "round it down to 200"],
        ),
        (
            # the miimon a bond already has counts
            BondConfig("bond0", downdelay=150),
            AB_UP,
            ["downdelay 150 is not a multiple of miimon 100"],
        ),
        (
            BondConfig("bond0", mode="802.3ad", arp_interval=100, arp_ip_targets=("10.0.0.1",)),
            None,
            ["not supported in mode 802.3ad", "balance-rr, active-backup, balance-xor, broadcast"],
        ),
        (
            BondConfig("bond0", mode="balance-alb"),
            CurrentBond("bond0", "active-backup", arp_interval=100, arp_ip_targets=("10.0.0.1",)),
            ["not supported in mode balance-alb"],
        ),
        (
            BondConfig("bond0", mode="active-backup", arp_ip_targets=("10.0.0",)),
            None,
            ["arp_ip_target '10.0.0' is not an IPv4 address"],
        ),
        (
            BondConfig("bond0", mode="active-backup", arp_ip_targets=("0.1.2.3",)),
            None,
            ["the kernel refuses 0.0.0.0/8 and 255.255.255.255"],
        ),
        (
            BondConfig("bond0", mode="active-backup", arp_ip_targets=("255.255.255.255",)),
            None,
            ["arp_ip_target 255.255.255.255", "the kernel refuses"],
        ),
        (
            BondConfig("bond0", mode="active-backup", arp_ip_targets=("10.0.0.1", "10.0.0.1")),
            None,
            ["arp_ip_target lists an address twice"],
        ),
        (
            BondConfig(
                "bond0",
                mode="active-backup",
                arp_ip_targets=tuple(f"10.0.0.{i}" for i in range(1, 18)),
            ),
            None,
            ["17 ARP targets", "at most 16"],
        ),
        (
            BondConfig("bond0", mode="active-backup", arp_interval=100),
            None,
            ["arp_interval without arp_ip_target"],
        ),
        (
            BondConfig("bond0", mode="active-backup", num_grat_arp=256),
            None,
            ["num_grat_arp must be 0 to 255, not 256"],
        ),
        (
            BondConfig("bond0", mode="active-backup", slaves=("eth/0",)),
            None,
            ["slave 'eth/0' is not an interface name", "1 to 15 characters"],
        ),
        (
            BondConfig("bond0", mode="active-backup", slaves=("a" * 16,)),
            None,
            ["is not an interface name"],
        ),
        (BondConfig("bond 0", mode="active-backup"), None, ["bond 'bond 0' is not an interface"]),
        (
            BondConfig("bond0", mode="active-backup", slaves=("bond0",)),
            None,
            ["bond bond0 cannot be its own slave"],
        ),
        (
            BondConfig("bond0", mode="active-backup", slaves=("eth0", "eth0")),
            None,
            ["a slave is named twice"],
        ),
        (
            BondConfig("bond0", slaves=("eth2",), remove_slaves=("eth2",)),
            AB_UP,
            ["eth2 is both added and removed"],
        ),
        (
            BondConfig("bond0", mode="balance-rr", slaves=("eth0",), primary="eth0"),
            None,
            ["primary is not used in mode balance-rr", "active-backup, balance-tlb, balance-alb"],
        ),
        (
            BondConfig("bond0", primary="eth2"),
            AB_UP,
            ["primary eth2 is not one of the bond's slaves (eth0, eth1)"],
        ),
        (
            BondConfig("bond0", primary="eth1", remove_slaves=("eth1",)),
            AB_UP,
            ["primary eth1 is not one of the bond's slaves (eth0)"],
        ),
        (BondConfig("bond0", miimon=100), None, ["bond bond0 does not exist: give its mode"]),
    ],
)
def test_validation_names_the_option_and_what_is_allowed(
    config: BondConfig, current: CurrentBond | None, needles: list[str]
) -> None:
    with pytest.raises(BondConfigError) as caught:
        validate(config, current)
    for needle in needles:
        assert needle in str(caught.value)
    # plan() refuses the same configuration before producing a single write
    with pytest.raises(BondConfigError):
        plan(config, current)


def test_validation_normalises_modes_and_fail_over_mac_given_as_numbers() -> None:
    config = validate(BondConfig("bond0", mode="1", fail_over_mac="2"))
    assert config.mode == "active-backup"
    assert config.fail_over_mac == "follow"
    assert parse_mode("4") == "802.3ad" and parse_mode("balance-tlb") == "balance-tlb"


def test_validation_allows_arp_monitoring_with_the_bonds_existing_targets() -> None:
    current = CurrentBond("bond0", "active-backup", arp_ip_targets=("10.0.0.1",))
    assert validate(BondConfig("bond0", arp_interval=200), current).arp_interval == 200


def test_validation_allows_a_primary_that_is_being_enslaved() -> None:
    config = BondConfig("bond0", mode="active-backup", slaves=("eth0",), primary="eth0")
    assert validate(config).primary == "eth0"


# --------------------------------------------------------------------------------------------
# The plan: in the order the kernel needs


def test_a_new_bond_is_created_then_mode_then_monitoring_then_slaves_then_primary() -> None:
    config = BondConfig(
        "bond0",
        mode="active-backup",
        fail_over_mac="active",
        miimon=100,
        updelay=200,
        downdelay=200,
        num_grat_arp=3,
        slaves=("eth0", "eth1"),
        primary="eth0",
    )
    writes = plan(config, None)
    assert writes[0] == Write(MASTERS, "+bond0", "create bond bond0")
    assert ops(writes) == [
        ("bonding_masters", "+bond0"),
        ("mode", "active-backup"),
        ("fail_over_mac", "active"),
        ("miimon", "100"),
        ("updelay", "200"),
        ("downdelay", "200"),
        ("num_grat_arp", "3"),
        ("slaves", "+eth0"),
        ("slaves", "+eth1"),
        ("primary", "eth0"),
    ]
    assert all(w.path.parts[:3] == ("class", "net", "bond0") for w in writes[1:])
    assert writes[1].path == PurePosixPath("class/net/bond0/bonding/mode")


def test_arp_targets_come_before_arp_interval_and_old_targets_are_removed() -> None:
    current = CurrentBond(
        "bond0", "active-backup", arp_interval=100, arp_ip_targets=("10.0.0.1", "10.0.0.2")
    )
    writes = plan(
        BondConfig("bond0", arp_interval=200, arp_ip_targets=("10.0.0.2", "10.0.0.3")), current
    )
    assert ops(writes) == [
        ("arp_ip_target", "-10.0.0.1"),
        ("arp_ip_target", "+10.0.0.3"),
        ("arp_interval", "200"),
    ]


def test_arp_monitoring_on_a_new_bond_says_the_kernel_turns_miimon_off() -> None:
    writes = plan(
        BondConfig(
            "bond0", mode="active-backup", arp_interval=100, arp_ip_targets=("192.168.2.8",)
        ),
        None,
    )
    assert ops(writes) == [
        ("bonding_masters", "+bond0"),
        ("mode", "active-backup"),
        ("arp_ip_target", "+192.168.2.8"),
        ("arp_interval", "100"),
    ]
    assert "turns MII monitoring off" in writes[-1].why


def test_a_mode_change_releases_the_slaves_takes_the_bond_down_and_restores_both() -> None:
    writes = plan(BondConfig("bond0", mode="802.3ad"), AB_UP)
    assert ops(writes) == [
        ("slaves", "-eth0"),
        ("slaves", "-eth1"),
        ("flags", "0x1002"),  # IFF_UP cleared, the other flags kept
        ("mode", "802.3ad"),
        ("flags", "0x1003"),
        ("slaves", "+eth0"),
        ("slaves", "+eth1"),
    ]
    assert writes[2].path == PurePosixPath("class/net/bond0/flags")
    assert "only while it is down" in writes[2].why


def test_a_mode_change_of_a_bond_that_is_down_does_not_touch_its_flags() -> None:
    down = CurrentBond("bond0", "balance-rr", slaves=("eth0",), flags=0x1002)
    writes = plan(BondConfig("bond0", mode="active-backup", primary="eth0"), down)
    assert ops(writes) == [
        ("slaves", "-eth0"),
        ("mode", "active-backup"),
        ("slaves", "+eth0"),
        ("primary", "eth0"),
    ]


def test_a_mode_change_does_not_rejoin_a_slave_being_removed() -> None:
    writes = plan(BondConfig("bond0", mode="balance-xor", remove_slaves=("eth1",)), AB_UP)
    assert ("slaves", "+eth1") not in ops(writes)
    assert ops(writes).count(("slaves", "-eth1")) == 1
    assert ops(writes)[-1] == ("slaves", "+eth0")


def test_a_fail_over_mac_change_releases_the_slaves_but_keeps_the_bond_up() -> None:
    writes = plan(BondConfig("bond0", fail_over_mac="follow"), AB_UP)
    assert ops(writes) == [
        ("slaves", "-eth0"),
        ("slaves", "-eth1"),
        ("fail_over_mac", "follow"),
        ("slaves", "+eth0"),
        ("slaves", "+eth1"),
    ]


def test_the_same_mode_is_not_written_again_and_enslaved_slaves_are_not_added_again() -> None:
    writes = plan(
        BondConfig("bond0", mode="active-backup", slaves=("eth1", "eth2"), primary="eth2"), AB_UP
    )
    assert ops(writes) == [("slaves", "+eth2"), ("primary", "eth2")]


def test_a_slave_is_released_without_a_mode_change() -> None:
    writes = plan(BondConfig("bond0", remove_slaves=("eth1", "eth9")), AB_UP)
    assert ops(writes) == [("slaves", "-eth1")]  # eth9 is not enslaved: nothing to release


def test_write_shell_is_the_seeds_echo_line() -> None:
    write = Write(bonding_path("bond0", "miimon"), "100")
    assert write.shell(Path("/sys")) == "echo 100 > /sys/class/net/bond0/bonding/miimon"


# --------------------------------------------------------------------------------------------
# A fixture sysfs tree


def make_bond(root: Path, current: CurrentBond) -> None:
    """The files the kernel shows for a bond (those read_current reads and plan writes)."""
    base = root / "class/net" / current.name / "bonding"
    base.mkdir(parents=True, exist_ok=True)
    mode_number = parse_mode(current.mode)
    from hastack.bonding.sysfs import MODES

    values = {
        "mode": f"{mode_number} {MODES.index(mode_number)}",
        "miimon": str(current.miimon),
        "arp_interval": str(current.arp_interval),
        "arp_ip_target": " ".join(current.arp_ip_targets),
        "fail_over_mac": f"{current.fail_over_mac} 0",
        "slaves": " ".join(current.slaves),
    }
    for option in OPTIONS:
        (base / option).write_text(values.get(option, "") + "\n")
    (root / "class/net" / current.name / "flags").write_text(f"{current.flags:#x}\n")


def make_sysfs(root: Path, *bonds: CurrentBond) -> Path:
    (root / "class/net").mkdir(parents=True)
    (root / MASTERS).write_text(" ".join(b.name for b in bonds) + "\n")
    for bond in bonds:
        make_bond(root, bond)
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


class KernelLike:
    """A writer over the fixture tree that records every write; `+NAME` into bonding_masters
    makes the bond's files as the kernel would, and a path in `refuse` fails as sysfs does."""

    def __init__(self, root: Path, refuse: set[str] | None = None) -> None:
        self.root = root
        self.refuse = refuse or set()
        self.writes: list[tuple[str, str]] = []

    def __call__(self, path: Path, value: str) -> None:
        relative = str(path.relative_to(self.root))
        if relative in self.refuse:
            raise OSError(22, "Invalid argument")
        write_value(path, value)
        self.writes.append((relative, value))
        if path == self.root / MASTERS and value.startswith("+"):
            make_bond(self.root, CurrentBond(value[1:], "balance-rr", miimon=100))


def test_read_current_reads_the_tree(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path, AB_UP, CurrentBond("bond1", "802.3ad", arp_ip_targets=()))
    assert read_current(root, "bond0") == AB_UP
    assert read_current(root, "bond1") == CurrentBond("bond1", "802.3ad")
    assert read_current(root, "bond2") is None


def test_read_current_without_the_driver_says_so(tmp_path: Path) -> None:
    with pytest.raises(BondConfigError, match="bonding_masters does not exist: the bonding driver"):
        read_current(tmp_path, "bond0")


def test_read_current_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path, AB_UP)
    (root / "class/net/bond0/flags").write_text("up\n")
    with pytest.raises(BondConfigError, match=r"class/net/bond0/flags: unexpected content"):
        read_current(root, "bond0")
    (root / "class/net/bond0/bonding/miimon").unlink()
    with pytest.raises(BondConfigError, match=r"class/net/bond0/bonding/miimon: "):
        read_current(root, "bond0")


def test_apply_creates_a_bond_in_the_tree_with_exactly_the_planned_values(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path)
    config = BondConfig(
        "bond0",
        mode="active-backup",
        miimon=100,
        downdelay=200,
        arp_ip_targets=None,
        slaves=("eth0", "eth1"),
        primary="eth1",
    )
    writes = plan(config, read_current(root, "bond0"))
    kernel = KernelLike(root)
    done = apply(writes, root, writer=kernel)
    assert done == writes
    assert kernel.writes == [(str(w.path), w.value) for w in writes]
    base = root / "class/net/bond0/bonding"
    # one file per option: the last value written is the file's content, with echo's newline
    assert (root / MASTERS).read_text() == "+bond0\n"
    assert (base / "mode").read_text() == "active-backup\n"
    assert (base / "miimon").read_text() == "100\n"
    assert (base / "downdelay").read_text() == "200\n"
    assert (base / "slaves").read_text() == "+eth1\n"
    assert (base / "primary").read_text() == "eth1\n"
    # what the plan did not name is untouched
    assert (base / "arp_interval").read_text() == "0\n"


def test_apply_changes_the_mode_of_a_live_bond_in_order(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path, AB_UP)
    writes = plan(
        BondConfig("bond0", mode="balance-alb", primary="eth0"), read_current(root, "bond0")
    )
    seen: list[Write] = []
    kernel = KernelLike(root)
    apply(writes, root, writer=kernel, on_write=seen.append)
    assert seen == writes
    assert [value for _, value in kernel.writes] == [
        "-eth0",
        "-eth1",
        "0x1002",
        "balance-alb",
        "0x1003",
        "+eth0",
        "+eth1",
        "eth0",
    ]
    assert (root / "class/net/bond0/flags").read_text() == "0x1003\n"


def test_apply_stops_at_the_first_refused_write_and_says_what_was_done(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path, AB_UP)
    writes = plan(BondConfig("bond0", miimon=200, updelay=400, downdelay=400), AB_UP)
    kernel = KernelLike(root, refuse={"class/net/bond0/bonding/updelay"})
    with pytest.raises(BondConfigError) as caught:
        apply(writes, root, writer=kernel)
    message = str(caught.value)
    assert f"{root}/class/net/bond0/bonding/updelay: writing '400' failed: Invalid argument" in (
        message
    )
    assert f"Done before it: echo 200 > {root}/class/net/bond0/bonding/miimon" in message
    assert kernel.writes == [("class/net/bond0/bonding/miimon", "200")]
    assert (root / "class/net/bond0/bonding/downdelay").read_text() == "\n"  # never reached


def test_apply_with_the_real_writer_creates_no_file(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path, AB_UP)
    (root / "class/net/bond0/bonding/num_grat_arp").unlink()
    writes = plan(BondConfig("bond0", miimon=200, num_grat_arp=2), AB_UP)
    with pytest.raises(BondConfigError, match="is the bonding driver loaded") as caught:
        apply(writes, root)
    assert "Done before it: echo 200 >" in str(caught.value)
    assert not (root / "class/net/bond0/bonding/num_grat_arp").exists()


def test_nothing_is_written_when_validation_fails(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path, AB_UP)
    before = snapshot(root)
    kernel = KernelLike(root)
    # valid first options (mode, miimon) and an invalid last one (primary not a slave)
    config = BondConfig("bond0", mode="balance-tlb", miimon=200, primary="eth7")
    with pytest.raises(BondConfigError, match="primary eth7 is not one of the bond's slaves"):
        apply(plan(config, read_current(root, "bond0")), root, writer=kernel)
    assert kernel.writes == []
    assert snapshot(root) == before
