"""drbd.conf as drbdadm 8.4 reads it: every section and form, units, inheritance, includes,
the checks, every error path with its message, select_host and dump."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from hastack.config.errors import ConfigError
from hastack.replica.config import (
    DiskFiles,
    load_drbd_conf,
    parse_drbd_conf,
    read_drbd_conf,
    select_host,
)
from hastack.replica.dump import dump, quote
from hastack.replica.model import (
    Address,
    Disk,
    DrbdConf,
    Global,
    Handlers,
    MetaDisk,
    Net,
    Option,
    Position,
    ResourceOptions,
    Settings,
    Startup,
)
from hastack.replica.options import GLOBAL, TABLES

# Written for these tests after the seed's drbd.conf slides (global, common, a resource with
# handlers, startup, disk, net, syncer and two node sections; the 8.3 spellings they use).
SEED_STYLE = """\
# two nodes, one mirrored partition, as in the slides
global {
    minor-count 64;
    dialog-refresh 5;
    disable-ip-verification;
    usage-count no;
}
common {
    protocol C;
    startup { degr-wfc-timeout 120; }
}
resource r0 {
    handlers {
        pri-on-incon-degr "echo o > /proc/sysrq-trigger; halt -f";
        pri-lost-after-sb "echo o > /proc/sysrq-trigger; halt -f";
        local-io-error "echo o > /proc/sysrq-trigger; halt -f";
        outdate-peer "/usr/lib/heartbeat/drbd-peer-outdater -t 5";
        pri-lost "/usr/local/sbin/alert-admin pri-lost";
        split-brain "/usr/lib/drbd/notify-split-brain.sh root";
        out-of-sync "/usr/lib/drbd/notify-out-of-sync.sh root";
        before-resync-target "/usr/lib/drbd/snapshot-resync-target-lvm.sh -p 15";
        after-resync-target /usr/lib/drbd/unsnapshot-resync-target-lvm.sh;
    }
    startup {
        wfc-timeout 60;
        wait-after-sb;
        become-primary-on both;
    }
    disk {
        on-io-error call-local-io-error;
        fencing resource-only;
        size 10G;
        no-disk-flushes;
        no-md-flushes;
    }
    net {
        timeout 50;
        connect-int 10;
        ping-int 10;
        ping-timeout 5;
        allow-two-primaries;
        cram-hmac-alg sha1;
        shared-secret "not a secret";
        after-sb-0pri discard-younger-primary;
        after-sb-1pri consensus;
        after-sb-2pri disconnect;
        rr-conflict disconnect;
    }
    syncer {
        rate 10M;
        al-extents 257;
        cpu-mask 3;
    }
    on foo1 {
        device /dev/drbd0;
        disk /dev/mtdblock3;
        address 192.168.1.1:7788;
        meta-disk internal;
    }
    on foo2 {
        device /dev/drbd0;
        disk /dev/mtdblock3;
        address 192.168.1.2:7788;
        flexible-meta-disk /dev/mtdblock4;
    }
}
"""

# Written for these tests in the shape of drbd.conf(5)'s (8.4) introductory example.
MAN_STYLE = """\
resource r0 {
    net {
        protocol C;
        cram-hmac-alg sha1;
        shared-secret "FooFunFactory";
    }
    disk {
        resync-rate 10M;
    }
    on alice {
        volume 0 {
            device    minor 1;
            disk      /dev/sda7;
            meta-disk internal;
        }
        address   10.1.1.31:7789;
    }
    on bob {
        volume 0 {
            device    minor 1;
            disk      /dev/sda7;
            meta-disk internal;
        }
        address   10.1.1.32:7789;
    }
}
"""

# Two hosts, the smallest resource: volume 0 implicit, device/disk/meta-disk inherited.
HOSTS = "on a { address 10.0.0.1:7789; } on b { address 10.0.0.2:7789; }"


def res(body: str = "", name: str = "r") -> str:
    """A valid one-line resource with `body` added before its host sections."""
    return (
        f"resource {name} {{ device minor 1; disk /dev/sdb; meta-disk internal; {body} {HOSTS} }}"
    )


def other(body: str = "", name: str = "s") -> str:
    """A second valid resource that shares nothing with res()'s."""
    return (
        res(body, name)
        .replace("minor 1", "minor 2")
        .replace("/dev/sdb", "/dev/sdc")
        .replace(":7789", ":7790")
    )


def parse(text: str) -> DrbdConf:
    return parse_drbd_conf(text, "drbd.conf", MemFiles({}))


def errors(text: str, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_drbd_conf(text, "drbd.conf", MemFiles(files or {}))
    return [str(p) for p in info.value.problems]


def one_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def warnings_of(conf: DrbdConf) -> list[str]:
    return [str(w) for w in conf.warnings]


class MemFiles:
    """Files for includes, from a dict: path -> text."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = {os.path.normpath(k): v for k, v in files.items()}

    def read(self, path: str) -> str:
        try:
            return self.files[os.path.normpath(path)]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", path) from None

    def glob(self, pattern: str) -> list[str]:
        import fnmatch

        pattern = os.path.normpath(pattern)
        return sorted(p for p in self.files if fnmatch.fnmatchcase(p, pattern))


# --------------------------------------------------------------------------------------------
# The two examples


def test_seed_style_example_parses_into_typed_fields() -> None:
    conf = parse(SEED_STYLE)
    assert conf.global_ == Global(
        usage_count="no", minor_count=64, dialog_refresh=5, disable_ip_verification=True
    )
    r0 = conf.resource("r0")
    assert r0.net.protocol == "C"  # common's resource-level protocol, an 8.3 form
    assert r0.startup == Startup(
        wfc_timeout=60,
        degr_wfc_timeout=120,  # from common
        become_primary_on=("both",),
        other=(Option("wait-after-sb", True),),
    )
    assert r0.disk.on_io_error == "call-local-io-error"
    assert r0.disk.fencing == "resource-only"
    assert r0.disk.size == 10 * 1024 * 1024 * 2  # sectors
    assert r0.disk.disk_flushes is False and r0.disk.md_flushes is False
    assert r0.disk.resync_rate == 10240  # syncer's rate, KiB/s
    assert r0.disk.al_extents == 257
    assert r0.options == ResourceOptions(other=(Option("cpu-mask", "3"),))
    assert r0.net.timeout == 50 and r0.net.ping_timeout == 5
    assert r0.net.allow_two_primaries is True
    assert (r0.net.cram_hmac_alg, r0.net.shared_secret) == ("sha1", "not a secret")
    assert (r0.net.after_sb_0pri, r0.net.after_sb_1pri, r0.net.after_sb_2pri) == (
        "discard-younger-primary",
        "consensus",
        "disconnect",
    )
    assert r0.handlers.fence_peer == "/usr/lib/heartbeat/drbd-peer-outdater -t 5"
    assert r0.handlers.after_resync_target == "/usr/lib/drbd/unsnapshot-resync-target-lvm.sh"
    assert r0.handlers.pri_lost == "/usr/local/sbin/alert-admin pri-lost"
    foo1, foo2 = r0.hosts
    assert foo1.names == ("foo1",) and foo1.address == Address("ipv4", "192.168.1.1", 7788)
    (v,) = foo1.volumes
    assert (v.number, v.device, v.minor, v.disk, v.implicit) == (
        0,
        "/dev/drbd0",
        0,
        "/dev/mtdblock3",
        True,
    )
    assert v.meta_disk == MetaDisk() and v.meta_disk.internal
    assert foo2.volumes[0].meta_disk == MetaDisk("/dev/mtdblock4")
    assert foo2.volumes[0].meta_disk.flexible


def test_seed_style_example_warns_by_name_about_what_hastack_does_not_act_on() -> None:
    found = warnings_of(parse(SEED_STYLE))
    assert any("global: minor-count 64: read, not acted on by hastack" in w for w in found)
    assert any("dialog-refresh 5: read, not acted on by hastack" in w for w in found)
    assert any("wait-after-sb yes: read, not acted on by hastack" in w for w in found)
    assert any("cpu-mask 3: read, not acted on by hastack" in w for w in found)
    assert any("outdate-peer: an 8.3 spelling, read as `fence-peer`" in w for w in found)
    assert any("no-disk-flushes: an 8.3 spelling, read as `disk-flushes no`" in w for w in found)
    assert any("flexible-meta-disk: an 8.3 spelling, read as meta-disk" in w for w in found)
    assert any("syncer: rate: read as `resync-rate` of the disk section" in w for w in found)
    # Values hastack behaves as anyway are not warned about.
    assert not any("usage-count" in w or "rr-conflict" in w for w in found)
    assert not any("disable-ip-verification" in w for w in found)
    # Every warning names its file, line and column.
    assert all(w.startswith("drbd.conf:") for w in found)


def test_man_page_style_example() -> None:
    conf = parse(MAN_STYLE)
    (r0,) = conf.resources
    assert r0.disk.resync_rate == 10240
    assert [h.names for h in r0.hosts] == [("alice",), ("bob",)]
    for host in r0.hosts:
        (v,) = host.volumes
        assert (v.number, v.device, v.minor, v.disk, v.implicit) == (
            0,
            "/dev/drbd1",
            1,
            "/dev/sda7",
            False,
        )
    assert conf.warnings == ()
    assert r0.net == Net(cram_hmac_alg="sha1", shared_secret="FooFunFactory")


def test_nothing_given_means_drbds_defaults() -> None:
    (r,) = parse(res()).resources
    assert r.settings == Settings()
    assert r.disk == Disk(
        resync_rate=250, al_extents=1237, c_plan_ahead=20, c_max_rate=102400, c_min_rate=250
    )
    assert r.net.protocol == "C" and r.net.timeout == 60 and r.net.ko_count == 7
    assert r.handlers == Handlers()


def test_an_empty_file_is_an_empty_configuration() -> None:
    conf = parse("# nothing yet\n")
    assert conf.resources == () and conf.global_ == Global() and conf.common == Settings()


def test_the_option_table_matches_the_models_defaults() -> None:
    classes = {"disk": Disk, "net": Net, "startup": Startup, "handlers": Handlers}
    for section, table in TABLES.items():
        if section == "options":
            continue
        defaults = classes[section]()
        typed = {f.name for f in dataclasses.fields(classes[section])} - {"other"}
        assert typed == {s.field for s in table.values() if s.field is not None}, section
        for spec in table.values():
            if spec.field is not None:
                expected = spec.default if spec.kind != "names" else ()
                assert getattr(defaults, spec.field) == expected, spec.name
            else:
                assert spec.why, f"{spec.name} needs the reason hastack does not act on it"
    for spec in GLOBAL.values():
        assert getattr(Global(), spec.field or "") == spec.default, spec.name


# --------------------------------------------------------------------------------------------
# Units and values


@pytest.mark.parametrize(
    ("option", "field", "value"),
    [
        ("disk { resync-rate 10M; }", "resync_rate", 10240),
        ("disk { resync-rate 100; }", "resync_rate", 100),
        ("disk { resync-rate 1g; }", "resync_rate", 1048576),
        ("disk { resync-rate 1024s; }", "resync_rate", 512),
        ("disk { c-max-rate 100M; }", "c_max_rate", 102400),
        ("disk { c-min-rate 0; }", "c_min_rate", 0),
        ("disk { size 1G; }", "size", 2097152),
        ("disk { size 4096; }", "size", 4096),
        ("disk { c-fill-target 1k; }", "c_fill_target", 2),
        ("disk { c-fill-target 1M; }", "c_fill_target", 2048),
        ("disk { c-plan-ahead 0; }", "c_plan_ahead", 0),
        ("disk { al-extents 067; }", "al_extents", 67),  # leading zeros: still decimal
        ("net { timeout 1K; }", "timeout", None),  # 1024 tenths: out of range below
        ("net { sndbuf-size 512k; }", "sndbuf_size", 524288),
        ("net { max-buffers 8k; }", "max_buffers", 8192),
        ("net { ping-timeout 30; }", "ping_timeout", 30),
        ('net { ko-count "4"; }', "ko_count", 4),  # drbdadm takes quoted numbers too
    ],
)
def test_numbers_take_drbds_suffixes_in_each_options_own_unit(
    option: str, field: str, value: int | None
) -> None:
    if value is None:
        assert "out of range" in one_error(res(option))
        return
    (r,) = parse(res(option)).resources
    section = r.disk if option.startswith("disk") else r.net
    assert getattr(section, field) == value


def test_booleans_flags_and_choices() -> None:
    (r,) = parse(
        res(
            "disk { disk-barrier; disk-flushes no; md-flushes yes; } "
            "net { protocol a; allow-two-primaries no; } "
            "startup { stacked-timeouts; become-primary-on a b; }"
        )
    ).resources
    assert (r.disk.disk_barrier, r.disk.disk_flushes, r.disk.md_flushes) == (True, False, True)
    assert r.net.protocol == "A"  # drbdadm reads the protocol in either case
    assert r.startup.become_primary_on == ("a", "b")
    assert r.startup.other == (Option("stacked-timeouts", True),)


def test_every_after_sb_policy_in_its_slot() -> None:
    zero = [
        "disconnect",
        "discard-younger-primary",
        "discard-older-primary",
        "discard-zero-changes",
        "discard-least-changes",
        "discard-local",
        "discard-remote",
        "discard-node-a",
    ]
    one = [
        "disconnect",
        "consensus",
        "discard-secondary",
        "call-pri-lost-after-sb",
        "violently-as0p",
    ]
    two = ["disconnect", "call-pri-lost-after-sb", "violently-as0p"]
    for slot, policies in (("0pri", zero), ("1pri", one), ("2pri", two)):
        for policy in policies:
            (r,) = parse(res(f"net {{ after-sb-{slot} {policy}; }}")).resources
            assert getattr(r.net, f"after_sb_{slot}") == policy


@pytest.mark.parametrize(
    ("slot", "policy"),
    [
        ("1pri", "discard-younger-primary"),
        ("1pri", "discard-node-a"),
        ("2pri", "consensus"),
        ("2pri", "discard-secondary"),
        ("2pri", "discard-remote"),
        ("0pri", "consensus"),
        ("0pri", "violently-as0p"),
        ("0pri", "call-pri-lost-after-sb"),
    ],
)
def test_an_after_sb_policy_outside_its_slot_is_an_error(slot: str, policy: str) -> None:
    found = one_error(res(f"net {{ after-sb-{slot} {policy}; }}"))
    assert f"after-sb-{slot}: '{policy}' is not one of disconnect" in found


def test_every_handler_is_a_typed_field() -> None:
    names = [
        "pri-on-incon-degr",
        "pri-lost-after-sb",
        "pri-lost",
        "fence-peer",
        "unfence-peer",
        "local-io-error",
        "initial-split-brain",
        "split-brain",
        "before-resync-target",
        "after-resync-target",
        "before-resync-source",
        "out-of-sync",
    ]
    body = " ".join(f'{n} "/bin/{n} arg";' for n in names)
    (r,) = parse(res(f"handlers {{ {body} }}")).resources
    for name in names:
        assert getattr(r.handlers, name.replace("-", "_")) == f"/bin/{name} arg"
    assert r.handlers.other == ()


def test_every_not_acted_option_is_kept_with_its_value_and_position() -> None:
    text = res(
        "disk { max-bio-bvecs 1; disk-drain no; resync-after s; al-updates no; "
        "discard-zeroes-if-aligned no; disable-write-same yes; disk-timeout 30; "
        "read-balancing round-robin; rs-discard-granularity 64k; } "
        "net { max-epoch-size 100; unplug-watermark 16; always-asbp; rr-conflict violently; "
        "tcp-cork no; congestion-fill 1M; congestion-extents 100; "
        "csums-after-crash-only; use-rle no; socket-check-timeout 3; } "
        'options { cpu-mask "ff,0"; on-no-data-accessible suspend-io; }'
    )
    text += " " + other()
    conf = parse(text)
    r = conf.resource("r")
    assert [(o.name, o.value) for o in r.disk.other] == [
        ("max-bio-bvecs", 1),
        ("disk-drain", False),
        ("resync-after", "s"),
        ("al-updates", False),
        ("discard-zeroes-if-aligned", False),
        ("disable-write-same", True),
        ("disk-timeout", 30),
        ("read-balancing", "round-robin"),
        ("rs-discard-granularity", 65536),
    ]
    assert [(o.name, o.value) for o in r.net.other] == [
        ("max-epoch-size", 100),
        ("unplug-watermark", 16),
        ("always-asbp", True),
        ("rr-conflict", "violently"),
        ("tcp-cork", False),
        ("congestion-fill", 2048),
        ("congestion-extents", 100),
        ("csums-after-crash-only", True),
        ("use-rle", False),
        ("socket-check-timeout", 3),
    ]
    assert r.options.other[0] == Option("cpu-mask", "ff,0")
    source = r.disk.other[0].source
    assert isinstance(source, Position) and (source.file, source.line) == ("drbd.conf", 1)
    found = warnings_of(conf)
    for name in ("max-bio-bvecs 1", "rr-conflict violently", "on-no-data-accessible suspend-io"):
        assert any(f"{name}: read, not acted on by hastack (" in w for w in found), name
    assert len([w for w in found if "not acted on" in w]) == 21


def test_options_in_any_order_and_an_option_given_twice_warns() -> None:
    conf = parse(res("net { timeout 30; timeout 40; }"))
    assert conf.resources[0].net.timeout == 40
    (warning,) = warnings_of(conf)
    assert "timeout is given twice; this one wins over the one at drbd.conf:1:" in warning


# --------------------------------------------------------------------------------------------
# Inheritance


def test_common_is_inherited_and_a_resources_own_value_wins() -> None:
    text = (
        "common { net { protocol B; timeout 30; tcp-cork no; } disk { resync-rate 1M; } "
        "handlers { split-brain /bin/true; } } "
        + res("net { timeout 40; use-rle no; } disk { c-max-rate 200M; }")
    )
    conf = parse(text)
    (r,) = conf.resources
    assert (r.net.protocol, r.net.timeout) == ("B", 40)
    assert r.disk.resync_rate == 1024 and r.disk.c_max_rate == 204800
    assert [o.name for o in r.net.other] == ["tcp-cork", "use-rle"]
    assert r.handlers.split_brain == "/bin/true"
    assert conf.common.net.timeout == 30 and conf.common.net.protocol == "B"


def test_common_may_come_after_the_resources() -> None:
    (r,) = parse(res() + " common { net { protocol A; } }").resources
    assert r.net.protocol == "A"


def test_device_disk_and_meta_disk_are_inherited_and_a_hosts_own_wins() -> None:
    text = """
    resource r {
        device /dev/drbd4;
        disk /dev/sdb;
        meta-disk /dev/sdc [2];
        on a { address 10.0.0.1:7789; disk /dev/sdx; }
        on b { address 10.0.0.2:7789; meta-disk internal; device minor 5; }
    }"""
    a, b = parse(text).resources[0].hosts
    (va,), (vb,) = a.volumes, b.volumes
    assert (va.device, va.minor, va.disk, va.meta_disk) == (
        "/dev/drbd4",
        4,
        "/dev/sdx",
        MetaDisk("/dev/sdc", 2),
    )
    assert (vb.device, vb.minor, vb.disk, vb.meta_disk) == ("/dev/drbd5", 5, "/dev/sdb", MetaDisk())


def test_explicit_volumes_at_resource_and_host_level_merge_by_number() -> None:
    text = """
    resource r {
        volume 0 { device minor 10; disk /dev/sda; meta-disk internal; }
        volume 1 { device minor 11; disk none; meta-disk internal; disk { resync-rate 1M; } }
        disk { resync-rate 2M; }
        on a { address 10.0.0.1:7789; volume 1 { disk /dev/sdb; disk { c-min-rate 0; } } }
        on b { address 10.0.0.2:7789; }
    }"""
    (r,) = parse(text).resources
    a, b = r.hosts
    assert [v.number for v in a.volumes] == [0, 1] == [v.number for v in b.volumes]
    assert a.volume(1).disk == "/dev/sdb" and b.volume(1).disk is None  # diskless on b
    assert not a.volume(0).implicit
    assert a.volume(0).disk_options is None  # the resource's disk options
    assert r.volume_disk(a.volume(0)).resync_rate == 2048
    assert r.volume_disk(a.volume(1)) == Disk(resync_rate=1024, c_min_rate=0)
    assert r.volume_disk(b.volume(1)) == Disk(resync_rate=1024)


def test_on_with_several_names_floating_and_stacked_sections() -> None:
    text = """
    resource lower {
        device minor 0; disk /dev/sda; meta-disk internal;
        on alice bob { address 10.2.2.100:7800; }
        on charlie { address ipv6 [fd01:2345::1]:7800; }
    }
    resource floats {
        device /dev/drbd_floats minor 2;
        disk /dev/sda7;
        meta-disk internal;
        floating 10.1.1.31:7802;
        floating ssocks 10.1.1.32:7802 { disk /dev/sdb; meta-disk /dev/sdc8; }
    }
    resource upper {
        stacked-on-top-of lower { device minor 9; address 10.0.0.9:7000; }
        on dora { device minor 9; disk /dev/x; meta-disk internal; address sdp 10.0.0.10:7000; }
    }"""
    conf = parse(text)
    lower, floats, upper = conf.resources
    assert lower.hosts[0].names == ("alice", "bob")
    assert lower.hosts[1].address == Address("ipv6", "fd01:2345::1", 7800)
    assert str(lower.hosts[1].address) == "ipv6 [fd01:2345::1]:7800"
    short, long = floats.hosts
    assert short.floating and short.names == () and short.label == "floating 10.1.1.31:7802"
    assert short.volumes[0].device == "/dev/drbd_floats" and short.volumes[0].minor == 2
    assert long.address.family == "ssocks"
    assert (long.volumes[0].disk, long.volumes[0].meta_disk) == ("/dev/sdb", MetaDisk("/dev/sdc8"))
    stacked, dora = upper.hosts
    assert stacked.stacked_on == "lower" and stacked.label == "stacked-on-top-of lower"
    assert stacked.volumes[0].disk == "/dev/drbd0"  # the lower resource's device
    assert dora.address.family == "sdp"


def test_device_forms() -> None:
    forms = {
        "device /dev/drbd3;": ("/dev/drbd3", 3),
        "device drbd3;": ("/dev/drbd3", 3),
        "device minor 3;": ("/dev/drbd3", 3),
        "device /dev/drbd3 minor 3;": ("/dev/drbd3", 3),
        'device "/dev/drbd_data" minor 3;': ("/dev/drbd_data", 3),
        "device drbd_data minor 3;": ("/dev/drbd_data", 3),
    }
    for statement, expected in forms.items():
        text = f"resource r {{ {statement} disk /dev/sdb; meta-disk internal; {HOSTS} }}"
        (v,) = parse(text).resources[0].hosts[0].volumes
        assert (v.device, v.minor) == expected, statement


def test_address_families_and_forms() -> None:
    forms = {
        "10.0.0.1:7789": Address("ipv4", "10.0.0.1", 7789),
        "ipv4 10.0.0.1 : 7789": Address("ipv4", "10.0.0.1", 7789),
        "ipv6 [fd00::1]:7789": Address("ipv6", "fd00::1", 7789),
        "ipv6 [ fe80::1%eth0 ] : 7789": Address("ipv6", "fe80::1%eth0", 7789),
        "ipv6 [::ffff:10.0.0.1]:7789": Address("ipv6", "::ffff:10.0.0.1", 7789),
        "ssocks 10.0.0.1:7789": Address("ssocks", "10.0.0.1", 7789),
        "sci 10.0.0.1:7789": Address("ssocks", "10.0.0.1", 7789),  # sci: ssocks' old name
        "sdp 10.0.0.1:7789": Address("sdp", "10.0.0.1", 7789),
    }
    for written, expected in forms.items():
        text = (
            "resource r { device minor 1; disk /dev/sdb; meta-disk internal; "
            f"on a {{ address {written}; }} on b {{ address 10.0.0.2:7789; }} }}"
        )
        assert parse(text).resources[0].hosts[0].address == expected, written


def test_quoted_strings_comments_and_line_numbers() -> None:
    text = (
        "# a comment { with braces }\n"
        'resource "r 1" { # after code\n'
        '  net { shared-secret "a \\"b\\" \\\\ c;#}"; cram-hmac-alg sha256; }\n'
        f"  device minor 1; disk /dev/sdb; meta-disk internal; {HOSTS}\n"
        "}\n"
    )
    (r,) = parse(text).resources
    assert r.name == "r 1"
    assert r.net.shared_secret == 'a "b" \\ c;#}'
    assert r.source == Position("drbd.conf", 2, 1)


def test_skip_blocks_are_ignored_anywhere() -> None:
    text = (
        'skip { anything { nested "}" } at all $%^ }\n'
        "skip resource old { on x { address 1.2.3.4:5; } }\n"
        + res("skip { net { protocol A; } } net { skip { x } protocol B; }")
    )
    (r,) = parse(text).resources
    assert r.net.protocol == "B"


def test_nbd_address_is_hastacks_addition_with_a_default_per_minor() -> None:
    text = """
    resource r {
        volume 0 { device minor 0; disk /dev/sda; meta-disk internal; }
        volume 1 { device minor 7; disk /dev/sdb; meta-disk internal; }
        on a { address 10.0.0.1:7789; volume 1 { nbd-address ipv6 [::1]:20000; } }
        on b { address 10.0.0.2:7789; }
    }
    resource s {
        device minor 3; disk /dev/sdc; meta-disk internal;
        on a { address 10.0.0.1:7790; nbd-address 0.0.0.0:10900; }
        on b { address 10.0.0.2:7790; }
    }"""
    conf = parse(text)
    a, b = conf.resource("r").hosts
    assert a.volume(0).nbd_address is None
    assert a.volume(0).nbd_export == Address("ipv4", "127.0.0.1", 10809)
    assert a.volume(1).nbd_export == Address("ipv6", "::1", 20000)
    assert b.volume(1).nbd_export == Address("ipv4", "127.0.0.1", 10816)
    sa, sb = conf.resource("s").hosts
    assert sa.volumes[0].nbd_export == Address("ipv4", "0.0.0.0", 10900)
    assert sb.volumes[0].nbd_export.port == 10812


# --------------------------------------------------------------------------------------------
# Includes


def test_include_globs_sorted_relative_to_the_including_file_and_nested() -> None:
    files = {
        "/etc/drbd.d/global_common.conf": 'global { usage-count no; } include "../extra/*.inc";',
        "/etc/extra/a.inc": "common { net { protocol B; } }",
        "/etc/drbd.d/b.res": other(name="b"),
        "/etc/drbd.d/a.res": res(name="a"),
        "/etc/drbd.d/a.res.orig": "this is not drbd.conf at all",
    }
    main = 'include "drbd.d/global_common.conf";\ninclude "drbd.d/*.res";\ninclude "none/*.res";\n'
    conf = parse_drbd_conf(main, "/etc/drbd.conf", MemFiles(files))
    assert [r.name for r in conf.resources] == ["a", "b"]
    assert conf.resources[0].net.protocol == "B"
    assert conf.global_.usage_count == "no"
    assert conf.files == (
        "/etc/drbd.conf",
        "/etc/drbd.d/global_common.conf",
        "/etc/extra/a.inc",
        "/etc/drbd.d/a.res",
        "/etc/drbd.d/b.res",
    )
    assert conf.resources[1].source == Position("/etc/drbd.d/b.res", 1, 1)


def test_include_problems() -> None:
    files = {
        "/c/one.conf": 'include "two.conf";',
        "/c/two.conf": 'include "/c/one.conf";',
        "/c/bad.res": "resource r { on a {",
    }
    text = 'include "one.conf";\ninclude "missing.conf";\ninclude "*.res";\n'
    text += 'resource x { include "y"; }\ninclude a b;'
    with pytest.raises(ConfigError) as info:
        parse_drbd_conf(text, "/c/drbd.conf", MemFiles(files))
    found = [str(p) for p in info.value.problems]
    assert found[0] == (
        "/c/bad.res:1:20: resource r, on a: missing '}' to close the section opened at line 1"
    )
    assert (
        found[1] == "/c/bad.res:1:20: resource r: missing '}' to close the section opened at line 1"
    )
    assert found[2] == (
        "/c/drbd.conf:2:1: include: cannot read /c/missing.conf: No such file or directory"
    )
    assert found[3].startswith("/c/drbd.conf:4:14: resource x: unknown keyword 'include'")
    assert found[4] == (
        '/c/drbd.conf:5:1: the top level: include takes one file pattern: include "drbd.d/*.res";'
    )
    assert found[5] == (
        "/c/two.conf:1:1: include: an include cycle: /c/one.conf -> /c/two.conf -> /c/one.conf"
    )
    assert len(found) == 6


def test_reading_real_files(tmp_path) -> None:
    (tmp_path / "drbd.d").mkdir()
    (tmp_path / "drbd.conf").write_text('include "drbd.d/*.res";\n')
    (tmp_path / "drbd.d" / "r.res").write_text(res())
    conf = load_drbd_conf(str(tmp_path / "drbd.conf"))
    assert [r.name for r in conf.resources] == ["r"]
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_drbd_conf(str(tmp_path / "nothing.conf"))
    (tmp_path / "latin1.conf").write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_drbd_conf(str(tmp_path / "latin1.conf"))
    assert DiskFiles().glob(str(tmp_path / "*.conf")) == sorted(
        [str(tmp_path / "drbd.conf"), str(tmp_path / "latin1.conf")]
    )


# --------------------------------------------------------------------------------------------
# Every error, with its message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the tokenizer's
        (res("net { shared-secret abc$%; }"), "'abc$%': '$' '%' may appear only inside a double"),
        (res('handlers { split-brain "no end; }'), "a quoted string without its closing '\"'"),
        (res(f'handlers {{ split-brain "{"x" * 256}"; }}'), "longer than 255 characters"),
        (res(f"handlers {{ split-brain {'x' * 129}; }}"), "a word longer than 128 characters"),
        # structure
        ("resource r { " + HOSTS, "resource r: missing '}' to close the section opened at line 1"),
        ("resource { }", "the top level: expected a resource name, got '{'"),
        ("Resource r { }", "expected global, common, resource, skip or include, got 'Resource'"),
        ("resource r { } ;", "expected global, common, resource, skip or include, got ';'"),
        (res("net { timeout 5 }"), "expected ';' to end `timeout`, got '}'"),
        ("skip foo ;", "expected '{' after skip, got ';'"),
        ("skip { never closed", "missing '}' to close the skip block opened at line 1"),
        ("global { } global { }", "a second global section (the first is at drbd.conf:1:1)"),
        ("common { } common { }", "a second common section (the first is at drbd.conf:1:1)"),
        (res("net { } net { }"), "a second net section (the first is at drbd.conf:1:"),
        (res() + " " + res(), "resource r: a second resource r (the first is at drbd.conf:1:1)"),
        # unknown names, with what is allowed
        (res("net { timout 5; }"), "unknown net option 'timout'; did you mean timeout? (allowed: "),
        (res("disk { rate 5; }"), "unknown disk option 'rate'"),
        (res("syncer { verify 5; }"), "unknown syncer option 'verify'"),
        ("global { usage 1; }", "global: unknown global option 'usage'"),
        (res("bogus 1;"), "resource r: unknown keyword 'bogus' (allowed: on, floating,"),
        ("common { device minor 1; }", "`device` belongs in a resource"),
        ("common { frob { } }", "common: unknown keyword 'frob'"),
        (res("net { discard-my-data; }"), "discard-my-data is an option of drbdadm's command"),
        # DRBD 9 and unsupported
        (res("connection-mesh { hosts a b; }"), "connection-mesh is DRBD 9 only, not supported"),
        (res("connection { }"), "connection is DRBD 9 only, not supported"),
        (res("options { quorum majority; }"), "quorum is DRBD 9 only, not supported"),
        (res("options { auto-promote yes; }"), "auto-promote is DRBD 9 only, not supported"),
        (res("handlers { quorum-lost /bin/true; }"), "quorum-lost is DRBD 9 only, not supported"),
        (res("net { transport tcp; }"), "transport is DRBD 9 only, not supported"),
        (res("net { fencing resource-only; }"), "fencing in net is DRBD 9 only, not supported"),
        (
            "resource r { device minor 1; disk /dev/sdb; meta-disk internal; "
            "on a { node-id 0; address 10.0.0.1:7789; } on b { address 10.0.0.2:7789; } }",
            "resource r, on a: node-id is DRBD 9 only, not supported",
        ),
        (res("proxy { memlimit 100M; }"), "DRBD Proxy sections are not supported by hastack"),
        (res("ignore-on a;"), "ignore-on (deprecated in 8.4) is not supported by hastack"),
        # values
        (res("net { protocol D; }"), "protocol: 'D' is not one of A, B, C"),
        (
            res("net { timeout 0; }"),
            "timeout: '0' is out of range: 1 to 600 (in 0.1 s; default 60)",
        ),
        (
            res("disk { resync-rate 10G; }"),
            "'10G' (= 10485760 KiB/s) is out of range: 1 to 4194304",
        ),
        (res("disk { resync-rate 3s; }"), "'3s' is not a whole number of KiB/s"),
        (res("disk { resync-rate 1.5M; }"), "'1.5M' is not a number: write digits"),
        (res("disk { resync-rate 2T; }"), "'2T' is not a number"),
        (res("disk { resync-rate 10 M; }"), "takes one value, got 2"),
        (
            res("disk { resync-rate; }"),
            "resync-rate: needs a value (1 to 4194304 (in KiB/s; default 250))",
        ),
        (res("net { max-buffers 10; }"), "max-buffers: '10' is out of range: 32 to 131072"),
        (res("net { ko-count 201; }"), "ko-count: '201' is out of range: 0 to 200 (default 7)"),
        (res("disk { al-extents 7; }"), "al-extents: '7' is out of range: 67 to 65534"),
        (
            res("startup { wfc-timeout 300001; }"),
            "'300001' is out of range: 0 to 300000 (in s; default 0)",
        ),
        ("global { minor-count 256; }", "global: minor-count: '256' is out of range: 1 to 255"),
        ("global { usage-count maybe; }", "'maybe' is not one of yes, no, ask"),
        ("global { disable-ip-verification yes; }", "takes no value (write"),
        (res("startup { stacked-timeouts no; }"), "stacked-timeouts: takes no value"),
        (res("disk { disk-barrier maybe; }"), "'maybe' is not yes or no"),
        (res('disk { md-flushes "no"; }'), "is not yes or no"),
        (res("disk { no-disk-flushes yes; }"), "no-disk-flushes: takes no value"),
        (res("disk { on-io-error Detach; }"), "'Detach' is not one of detach, pass_on, call-local"),
        (res("disk { fencing stonith; }"), "'stonith' is not one of dont-care, resource-only"),
        (res("net { cram-hmac-alg crc32c; }"), "is not a digest algorithm hastack implements"),
        (res("net { verify-alg sha3-256; }"), "'sha3-256' is not a digest algorithm"),
        (res(f'net {{ shared-secret "{"s" * 65}"; }}'), "is 65 characters long; at most 64"),
        (res("options { cpu-mask xyz; }"), "'xyz' is not a CPU mask"),
        (res("startup { become-primary-on; }"), "needs a host name, several, or `both`"),
        (res("startup { become-primary-on both a; }"), "`both` stands alone"),
        (res('disk { resync-after ""; }'), "resync-after: needs a resource name"),
        # host sections, devices, addresses
        (
            "resource r { device minor 1; disk /dev/sdb; meta-disk internal; "
            "on a { address 10.0.0.1; } on b { address 10.0.0.2:7789; } }",
            "expected ':' and a port after 10.0.0.1, got ';'",
        ),
        (res().replace("10.0.0.1:7789", "node-a:7789"), "expected an IPv4 address (drbd.conf"),
        (res().replace("10.0.0.1:7789", "10.0.0.300:7789"), "got '10.0.0.300'"),
        (res().replace("10.0.0.1:7789", "10.0.0.1:0"), "expected a port from 1 to 65535"),
        (res().replace("10.0.0.1:7789", "10.0.0.1:65536"), "expected a port from 1 to 65535"),
        (res().replace("10.0.0.1:7789", "[fd00::1]:7789"), "needs the ipv6 keyword"),
        (res().replace("10.0.0.1:7789", "ipv6 fd00::1:7789"), "an IPv6 address goes in brackets"),
        (res().replace("10.0.0.1:7789", "ipv6 [fd00::1:7789"), "expected ']' to end the IPv6"),
        (res().replace("10.0.0.1:7789", "ipv6 [fd00:::1]:7789"), "'fd00:::1' is not an IPv6"),
        (
            res().replace("address 10.0.0.1:7789;", "address 10.0.0.1:7789; address 10.0.0.3:1;"),
            "a second address (the first is at drbd.conf:1:",
        ),
        (
            res().replace("address 10.0.0.1:7789;", "address 10.0.0.1:7789; disk /a; disk /b;"),
            "resource r, on a: a second disk (the first is at drbd.conf:1:",
        ),
        (res().replace("on a {", "on {"), "`on` needs a host name"),
        (
            "resource r { device minor 1; disk /dev/sdb; meta-disk internal; "
            "floating 10.0.0.1:7789 { address 10.0.0.1:7789; } floating 10.0.0.2:7789; }",
            "a floating section's address is the one after `floating`",
        ),
        (res().replace("on a {", "on a { frob;"), "resource r, on a: unknown keyword 'frob'"),
        (res().replace("on a {", "on a { disk { resync-rate 1M; }"), "a disk options section"),
        (res().replace("on a {", "on a { proxy on p { } "), "DRBD Proxy sections are not"),
        (res("nbd-address 127.0.0.1:1;"), "nbd-address belongs in an `on` section or in a volume"),
        (
            res().replace("on a {", "on a { nbd-address ssocks 10.0.0.1:1;"),
            "nbd-address takes an ipv4 or ipv6 address",
        ),
        (
            res().replace("on a {", "on a { nbd-address 127.0.0.1:1; nbd-address 127.0.0.1:2;"),
            "a second nbd-address",
        ),
        (res().replace("device minor 1", "device /dev/foo"), "'/dev/foo' is neither /dev/drbdN"),
        (res().replace("device minor 1", "device /dev/drbd_x"), "needs its minor: `device"),
        (res().replace("device minor 1", "device /dev/drbd7 minor 3"), "disagree: write `device"),
        (res().replace("device minor 1", "device minor x"), "the minor 'x' is not a number from"),
        (res().replace("device minor 1", "device minor 1048576"), "is not a number from 0 to"),
        (res().replace("device minor 1", "device /dev/drbd1048576"), "above 1048575"),
        (res().replace("device minor 1", "device a b c"), "write `device /dev/drbdN;`"),
        (res().replace("device minor 1", "device"), "needs a device name, a minor, or both"),
        (res().replace("disk /dev/sdb", "disk sdb"), "'sdb' is not an absolute path"),
        (res().replace("disk /dev/sdb", "disk /a /b"), "takes one backing device"),
        (res().replace("meta-disk internal", "meta-disk md"), "'md' is not an absolute path"),
        (res().replace("meta-disk internal", "meta-disk /m [-1]"), "meta-disk: write `meta-disk"),
        (res().replace("meta-disk internal", "meta-disk internal [0]"), "internal takes no index"),
        (res().replace("meta-disk internal", "flexible-meta-disk /m [0]"), "takes no index"),
        (res().replace("meta-disk internal", "meta-disk"), "write `meta-disk internal;`"),
        (res("volume x { }"), "expected a volume number from 0 to 65535, got 'x'"),
        (res("volume 65536 { }"), "expected a volume number from 0 to 65535"),
        (res("volume 0 { frob; }"), "resource r, volume 0: unknown keyword 'frob'"),
    ],
)
def test_each_error_names_file_line_column_and_what_is_allowed(text: str, message: str) -> None:
    found = errors(text)
    assert any(message in f for f in found), found
    assert all(f.startswith("drbd.conf:1:") for f in found), found


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "resource r { device minor 1; disk /dev/sdb; meta-disk internal; "
            "on a { address 10.0.0.1:7789; } }",
            "resource r: has 1 host section(s) (on a); DRBD 8.4 replicates between exactly two",
        ),
        (
            "resource r { device minor 1; disk /dev/sdb; meta-disk internal; }",
            "resource r: has 0 host section(s) (none)",
        ),
        (
            res().replace("} }", "} on c { address 10.0.0.3:7789; } }"),
            "has 3 host section(s) (on a, on b, on c)",
        ),
        (
            res().replace("on b {", "on a b {"),
            "resource r: host a has a second section (the first is at drbd.conf:1:",
        ),
        (
            "resource r { device minor 1; disk /dev/sdb; " + HOSTS + " }",
            "resource r, on a: no meta-disk (give it here or in the resource section",
        ),
        (
            "resource r { " + HOSTS + " }",
            "resource r, on a: no device, no disk, no meta-disk",
        ),
        (
            res().replace("address 10.0.0.1:7789;", ""),
            "resource r, on a: no address (write `address IP:PORT;`)",
        ),
        (
            res("volume 1 { device minor 2; disk /dev/sdc; meta-disk internal; }"),
            "mixes `volume N { }` sections with device/disk/meta-disk written outside of them",
        ),
        (
            "resource r { on a { address 10.0.0.1:7789; volume 0 { device minor 1; disk /a; "
            "meta-disk internal; } volume 1 { device minor 2; disk /b; meta-disk internal; } } "
            "on b { address 10.0.0.2:7789; volume 0 { device minor 1; disk /a; "
            "meta-disk internal; } } }",
            "resource r, on a: volume 1 is not defined for on b",
        ),
        (
            "resource r { volume 0 { device minor 1; disk /a; meta-disk internal; } "
            "on a { address 10.0.0.1:7789; nbd-address 127.0.0.1:1; } "
            "on b { address 10.0.0.2:7789; } }",
            "with `volume N { }` sections, nbd-address goes in each volume",
        ),
        (
            "resource r { volume 0 { device minor 1; disk /a; meta-disk internal; } "
            "volume 0 { device minor 2; disk /b; meta-disk internal; } " + HOSTS + " }",
            "resource r: a second volume 0 (the first is at drbd.conf:1:14)",
        ),
        (
            f"resource r {{ {HOSTS} device minor 1; disk /dev/sdb; meta-disk internal; }}",
            "device must come before the first host section (line 1)",
        ),
        (
            res("net { allow-two-primaries; protocol B; }"),
            "resource r: allow-two-primaries needs protocol C (this resource uses protocol B)",
        ),
        (
            "common { net { protocol A; } } " + res("net { allow-two-primaries yes; }"),
            "allow-two-primaries needs protocol C (this resource uses protocol A)",
        ),
        (
            res("net { on-congestion pull-ahead; }"),
            "on-congestion pull-ahead needs protocol A (this resource uses protocol C)",
        ),
        (
            res("net { after-sb-0pri discard-node-zed; }"),
            "after-sb-0pri discard-node-zed names no host of this resource (hosts: a, b)",
        ),
        (
            res("startup { become-primary-on zed; }"),
            "become-primary-on zed: not a host of this resource (hosts: a, b, or both)",
        ),
        (
            res("disk { resync-after r; }"),
            "resync-after r: not another resource (resources: none)",
        ),
        (
            res("syncer { after nowhere; }"),
            "resync-after nowhere: not another resource",
        ),
        (
            res("protocol A; net { protocol B; }"),
            "protocol is also given in protocol at drbd.conf:1:",
        ),
        (
            res("disk { resync-rate 1M; } syncer { rate 2M; }"),
            "resync-rate is also given in disk at drbd.conf:1:",
        ),
        (
            "resource r { stacked-on-top-of nowhere { device minor 9; address 10.0.0.9:7000; } "
            "on c { device minor 9; disk /x; meta-disk internal; address 10.0.0.1:7000; } }",
            "resource r, stacked-on-top-of nowhere: names no other resource (resources: r)",
        ),
    ],
)
def test_each_check_drbdadm_applies(text: str, message: str) -> None:
    found = errors(text)
    assert any(message in f for f in found), found


def test_checks_across_resources() -> None:
    other = (
        "resource s { device minor 1; disk /dev/sdc; meta-disk internal; "
        "on a { address 10.0.0.1:7790; } on b { address 10.0.0.2:7789; } }"
    )
    found = errors(res() + "\n" + other)
    assert found == [
        "drbd.conf:2:14: resource s, on a: minor 1 is also used on host a by resource r at "
        "drbd.conf:1:14",
        "drbd.conf:2:14: resource s, on a: device /dev/drbd1 is also used on host a by "
        "resource r at drbd.conf:1:14",
        "drbd.conf:2:14: resource s, on b: minor 1 is also used on host b by resource r at "
        "drbd.conf:1:14",
        "drbd.conf:2:14: resource s, on b: device /dev/drbd1 is also used on host b by "
        "resource r at drbd.conf:1:14",
        "drbd.conf:2:97: resource s, on b: address 10.0.0.2:7789 is also used by resource r, "
        "on b at drbd.conf:1:98",
    ]


def test_a_backing_disk_or_meta_data_slot_used_twice_on_a_node() -> None:
    disk = errors(res() + "\n" + other().replace("/dev/sdc", "/dev/sdb"))
    assert disk == [
        "drbd.conf:2:14: resource s, on a: disk /dev/sdb is also used on host a by resource r "
        "at drbd.conf:1:14",
        "drbd.conf:2:14: resource s, on b: disk /dev/sdb is also used on host b by resource r "
        "at drbd.conf:1:14",
    ]
    slot = errors(
        res().replace("internal", "/dev/md [0]") + "\n" + other().replace("internal", "/dev/md [0]")
    )
    assert len(slot) == 2 and "meta-disk /dev/md [0] is also used on host a" in slot[0]
    flexible = errors(res().replace("internal", "/dev/md") + other().replace("internal", "/dev/md"))
    assert len(flexible) == 2 and "meta-disk /dev/md is also used on host a" in flexible[0]
    # Other slots of one meta-data device, and several diskless volumes, are fine.
    parse(res().replace("internal", "/dev/md [0]") + other().replace("internal", "/dev/md [1]"))
    parse(res().replace("/dev/sdb", "none") + other().replace("/dev/sdc", "none"))


def test_a_stacked_section_takes_only_device_and_address() -> None:
    lower = res()
    found = errors(
        lower + " resource up { stacked-on-top-of r { device minor 9; meta-disk internal; "
        "address 10.0.0.9:7000; } on c { device minor 9; disk /x; meta-disk internal; "
        "address 10.0.0.10:7000; } }"
    )
    assert found == [
        "drbd.conf:1:184: resource up, stacked-on-top-of r: a stacked-on-top-of section takes "
        "no meta-disk: it sits on the device of resource r, with internal meta-data"
    ]
    found = errors(
        lower + " resource up { volume 1 { device minor 9; } stacked-on-top-of r { "
        "address 10.0.0.9:7000; } on c { volume 1 { device minor 9; disk /x; "
        "meta-disk internal; } address 10.0.0.10:7000; } }"
    )
    assert found == [
        "drbd.conf:1:146: resource up, stacked-on-top-of r, volume 1: resource r has no "
        "volume 1 to stack on"
    ]
    # The resource's own disk and meta-disk are not the stacked section's.
    text = lower + (
        " resource up { disk /dev/y; meta-disk /dev/m; stacked-on-top-of r { device minor 9; "
        "address 10.0.0.9:7000; } on c { device minor 9; address 10.0.0.10:7000; } }"
    )
    stacked, c = parse(text).resource("up").hosts
    assert (stacked.volumes[0].disk, stacked.volumes[0].meta_disk) == ("/dev/drbd1", MetaDisk())
    assert (c.volumes[0].disk, c.volumes[0].meta_disk) == ("/dev/y", MetaDisk("/dev/m"))


def test_nbd_export_clashes() -> None:
    text = (
        "resource r { device minor 1; disk /dev/sdb; meta-disk internal; "
        "on a { address 10.0.0.1:7789; nbd-address 10.0.0.1:7789; } "
        "on b { address 10.0.0.2:7789; nbd-address 127.0.0.1:10812; } }\n"
        "resource s { device minor 3; disk /dev/sdc; meta-disk internal; "
        "on a { address 10.0.0.1:7790; } on b { address 10.0.0.2:7790; } }\n"
        "resource t { device minor 60000; disk /dev/sdd; meta-disk internal; "
        "on a { address 10.0.0.1:7791; } on b { address 10.0.0.2:7791; } }\n"
    )
    found = errors(text)
    assert found == [
        "drbd.conf:1:14: resource r, on a: the NBD export of volume 0 10.0.0.1:7789 is also "
        "the replication address of resource r at drbd.conf:1:65 on host a",
        "drbd.conf:2:14: resource s, on b: the NBD export of volume 0 127.0.0.1:10812 is also "
        "the NBD export of volume 0 of resource r at drbd.conf:1:14 on host b",
        "drbd.conf:3:14: resource t, on a: minor 60000 puts the default NBD port "
        "(10809 + minor) above 65535; give nbd-address",
        "drbd.conf:3:14: resource t, on b: minor 60000 puts the default NBD port "
        "(10809 + minor) above 65535; give nbd-address",
    ]


def test_resync_after_cycle() -> None:
    text = res("disk { resync-after s; }") + "\n" + other("disk { resync-after r; }")
    found = errors(text)
    assert found == ["drbd.conf:1:72: resource r: resync-after forms a cycle: r -> s -> r"]


def test_all_problems_are_reported_together_in_file_order() -> None:
    text = (
        "global { minor-count 0; }\n"
        "common { net { protocol X; } }\n"
        + res("net { timeout 0; } disk { resync-rate 0; bogus; }")
        + "\n"
        + "resource s { frob; }\n"
    )
    found = errors(text)
    assert [f.split(": ")[0] for f in found] == [
        "drbd.conf:1:10",
        "drbd.conf:2:16",
        "drbd.conf:3:71",
        "drbd.conf:3:91",
        "drbd.conf:3:106",
        "drbd.conf:4:14",
    ]


def test_a_broken_resource_does_not_cascade_into_more_errors() -> None:
    # The address line fails; "no address" is not reported on top of it.
    text = res().replace("10.0.0.1:7789", "10.0.0.1")
    assert len(errors(text)) == 1


def test_read_drbd_conf_returns_problems_and_warnings_without_raising() -> None:
    conf, problems, warnings = read_drbd_conf(res("net { tcp-cork no; timeout 0; }"), "x.conf")
    assert conf is None
    assert [str(p) for p in problems] == [
        "x.conf:1:84: resource r, net: timeout: '0' is out of range: "
        "1 to 600 (in 0.1 s; default 60)"
    ]
    assert len(warnings) == 1 and "tcp-cork no" in str(warnings[0])


# --------------------------------------------------------------------------------------------
# Warnings


def test_cram_and_secret_alone_and_timeout_relations_warn() -> None:
    found = warnings_of(parse(res("net { cram-hmac-alg sha1; timeout 100; }")))
    assert any("cram-hmac-alg without shared-secret" in w for w in found)
    assert any(
        "timeout 10 s is not lower than ping-int (10 s) and connect-int (10 s)" in w for w in found
    )
    found = warnings_of(parse(res('net { shared-secret "x"; }')))
    assert any(
        "shared-secret without cram-hmac-alg: peer authentication stays off" in w for w in found
    )


def test_obsolete_options_are_dropped_with_a_warning() -> None:
    conf = parse(res("disk { use-bmbv; }"))
    assert conf.resources[0].disk == Disk()
    assert "use-bmbv: an 8.3 setting without effect since DRBD 8.4; ignored" in warnings_of(conf)[0]


def test_no_tcp_cork_and_the_syncer_section() -> None:
    conf = parse(
        res(
            "net { no-tcp-cork; } syncer { rate 1M; after s; verify-alg md5; csums-alg sha1; "
            "use-rle no; c-plan-ahead 0; on-no-data-accessible suspend-io; }"
        )
        + " "
        + other()
    )
    r = conf.resource("r")
    assert (r.net.verify_alg, r.net.csums_alg, r.disk.c_plan_ahead) == ("md5", "sha1", 0)
    assert [(o.name, o.value) for o in r.net.other] == [("tcp-cork", False), ("use-rle", False)]
    assert ("resync-after", "s") in [(o.name, o.value) for o in r.disk.other]
    assert r.options.other == (Option("on-no-data-accessible", "suspend-io"),)
    assert any("syncer: an 8.3 section" in w for w in warnings_of(conf))


# --------------------------------------------------------------------------------------------
# This node's host section


def test_select_host_by_name_address_and_lower_resource() -> None:
    text = """
    resource r0 { device minor 0; disk /dev/sda; meta-disk internal;
        on alice bob { address 10.0.0.1:7789; } on carol { address 10.0.0.3:7789; } }
    resource f { device minor 1; disk /dev/sdb; meta-disk internal;
        floating 10.0.1.1:7790; floating ipv6 [fd00::2]:7790; }
    resource up { stacked-on-top-of r0 { device minor 9; address 10.0.9.1:7000; }
        on dave { device minor 9; disk /dev/sdz; meta-disk internal; address 10.0.9.2:7000; } }
    """
    conf = parse(text)
    mine, peer = select_host(conf, "r0", "bob")
    assert mine.names == ("alice", "bob") and peer.names == ("carol",)
    mine, peer = select_host(conf, conf.resource("r0"), "carol")
    assert mine.names == ("carol",)
    mine, peer = select_host(conf, "f", "any", addresses=["192.0.2.1", "fd00:0::2"])
    assert mine.address.host == "fd00::2" and peer.address.host == "10.0.1.1"
    mine, peer = select_host(conf, "up", "alice")
    assert mine.stacked_on == "r0" and peer.names == ("dave",)
    with pytest.raises(ConfigError) as info:
        select_host(conf, "r0", "eve")
    assert str(info.value) == (
        "drbd.conf:2:5: resource r0: no host section for node 'eve'; its sections: "
        "on alice bob, on carol"
    )
    with pytest.raises(ConfigError, match="more than one host section"):
        select_host(conf, "f", "x", addresses=["10.0.1.1", "fd00::2"])
    with pytest.raises(ConfigError, match=r"no resource 'nope' \(resources: r0, f, up\)"):
        select_host(conf, "nope", "alice")


# --------------------------------------------------------------------------------------------
# dump


def test_dump_is_canonical_and_reads_back_equal() -> None:
    for text in (SEED_STYLE, MAN_STYLE):
        conf = parse(text)
        again = parse(dump(conf))
        assert again == conf
        assert dump(again) == dump(conf)


def test_dump_text() -> None:
    conf = parse(
        "global { usage-count no; } common { net { protocol B; } }\n"
        + res(
            'net { protocol C; shared-secret "two words"; cram-hmac-alg sha1; } '
            "disk { resync-rate 10M; }"
        )
    )
    assert dump(conf) == (
        "# drbd.conf, as hastack reads it\n"
        "\n"
        "global {\n"
        "    usage-count no;\n"
        "}\n"
        "\n"
        "common {\n"
        "    net {\n"
        "        protocol B;\n"
        "    }\n"
        "}\n"
        "\n"
        "resource r {\n"
        "    on a {\n"
        "        device /dev/drbd1 minor 1;\n"
        "        disk /dev/sdb;\n"
        "        meta-disk internal;\n"
        "        address ipv4 10.0.0.1:7789;\n"
        "    }\n"
        "    on b {\n"
        "        device /dev/drbd1 minor 1;\n"
        "        disk /dev/sdb;\n"
        "        meta-disk internal;\n"
        "        address ipv4 10.0.0.2:7789;\n"
        "    }\n"
        "    disk {\n"
        "        resync-rate 10240;\n"
        "    }\n"
        "    net {\n"
        "        protocol C;\n"
        "        cram-hmac-alg sha1;\n"
        '        shared-secret "two words";\n'
        "    }\n"
        "}\n"
    )


def test_dump_of_every_form_reads_back_equal() -> None:
    text = """
    global { minor-count 8; udev-always-use-vnr; cmd-timeout-long 60; }
    resource lower { device minor 0; disk /dev/sda; meta-disk /dev/md [3];
        on alice bob { address 10.0.0.1:7789; nbd-address ipv6 [::1]:9000; }
        on carol { address ipv6 [fd00::3]:7789; } }
    resource f { device /dev/drbd_f minor 1; disk none; meta-disk internal;
        floating 10.0.1.1:7790; floating sdp 10.0.1.2:7790 { disk /dev/x; } }
    resource v { volume 0 { device minor 5; disk /a; meta-disk internal; disk { size 1M; } }
        volume 3 { device minor 6; disk /b; meta-disk /m; }
        startup { become-primary-on alice; stacked-timeouts; }
        on alice { address 10.0.2.1:7791; volume 3 { disk { resync-rate 1M; } } }
        on carol { address 10.0.2.2:7791; } }
    resource up { stacked-on-top-of lower { device minor 9; address 10.0.9.1:7000; }
        on dave { device minor 9; disk /dev/sdz; meta-disk internal; address 10.0.9.2:7000; } }
    """
    conf = parse(text)
    assert parse(dump(conf)) == conf


def test_quote() -> None:
    assert quote("/dev/sda") == "/dev/sda"
    assert quote("") == '""'
    assert quote('a "b" \\') == '"a \\"b\\" \\\\"'
    with pytest.raises(ValueError, match="line break"):
        quote("a\nb")


def test_al_extents_above_what_the_activity_log_holds_names_file_line_and_the_limit() -> None:
    """drbd.conf(5) allows al-extents up to 65534; hastack's on-disk activity log (32 KiB, a
    ring of 8 transactions) holds MAX_AL_EXTENTS. A larger value is an error at read time, at
    the value's file:line:column, saying both ranges; MAX_AL_EXTENTS itself is read."""
    from hastack.replica.activitylog import MAX_AL_EXTENTS

    assert MAX_AL_EXTENTS == 6223
    text = (
        "common {\n"
        "  disk { al-extents 1237; }\n"
        "}\n"
        "resource r {\n"
        "  disk {\n"
        "    resync-rate 10M;\n"
        "    al-extents 10000;\n"
        "  }\n"
        f"  device minor 1; disk /dev/sdb; meta-disk internal; {HOSTS}\n"
        "}\n" + other("syncer { al-extents 6224; }")
    )
    found = errors(text)
    assert found == [
        "drbd.conf:7:5: resource r, disk: al-extents: '10000' is more than hastack allows: "
        "67 to 6223, what hastack's 32 KiB on-disk activity log holds (drbd.conf(5) allows up "
        "to 65534; DRBD 8.4 lowers it to what its own activity log holds)",
        "drbd.conf:11:74: resource s, syncer: al-extents: '6224' is more than hastack allows: "
        "67 to 6223, what hastack's 32 KiB on-disk activity log holds (drbd.conf(5) allows up "
        "to 65534; DRBD 8.4 lowers it to what its own activity log holds)",
    ]
    assert "'64K' (= 65536 extents of 4 MiB) is out of range: 67 to 65534" in one_error(
        res("disk { al-extents 64K; }")
    )
    (r,) = parse(res(f"disk {{ al-extents {MAX_AL_EXTENTS}; }}")).resources
    assert r.disk.al_extents == MAX_AL_EXTENTS


def test_al_extents_in_an_included_file_is_reported_there(tmp_path: Path) -> None:
    from hastack.replica.config import load_drbd_conf

    (tmp_path / "drbd.d").mkdir()
    (tmp_path / "drbd.d" / "r.res").write_text(
        "# resource r\n" + res("disk { al-extents 8000; }") + "\n"
    )
    (tmp_path / "drbd.conf").write_text('include "drbd.d/*.res";\n')
    with pytest.raises(ConfigError) as info:
        load_drbd_conf(str(tmp_path / "drbd.conf"))
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith(f"{tmp_path}/drbd.d/r.res:2:")
    assert "al-extents: '8000' is more than hastack allows: 67 to 6223" in problem
