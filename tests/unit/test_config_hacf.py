"""ha.cf: every directive, every error path, the relations, and Debian's sample file."""

from __future__ import annotations

import gzip
import os
import re

import pytest

from hastack.config.errors import ConfigError
from hastack.config.hacf import NOT_ACTED_ON, NOT_SUPPORTED, load_hacf, parse_hacf, read_hacf
from hastack.config.model import HaCf, Source

# Two nodes and one ucast link: the smallest valid file. Lines 1-3.
BASE = "node a b\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\n"
SAMPLE_HACF = "/usr/share/doc/heartbeat/ha.cf.gz"


def parse(extra: str = "") -> HaCf:
    return parse_hacf(BASE + extra, "ha.cf")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_hacf(text, "ha.cf")
    return [str(p) for p in info.value.problems]


def bad_line(line: str) -> str:
    """The one error of a valid file with `line` put first (so it is ha.cf:1)."""
    found = errors(line + "\n" + BASE)
    assert len(found) == 1, found
    assert found[0].startswith("ha.cf:1: "), found
    return found[0]


def warnings_of(hacf: HaCf) -> list[str]:
    return [str(w) for w in hacf.warnings]


# -- line handling -----------------------------------------------------------------------------


def test_comments_blank_lines_blanks_and_crlf() -> None:
    text = (
        "# a comment\n\n   \t\n  node a b   # trailing comment\r\nucast eth0 10.0.0.1\r\n"
        "#keepalive 9\n"
    )
    hacf = parse_hacf(text, "ha.cf")
    assert [n.name for n in hacf.nodes] == ["a", "b"]
    assert hacf.nodes[0].source == Source("ha.cf", 4)
    assert hacf.timing is not None and hacf.timing.keepalive == 1.0
    assert hacf.warnings == ()


def test_directive_names_are_case_sensitive_like_heartbeat() -> None:
    assert bad_line("Keepalive 2").endswith("did you mean 'keepalive'?")


def test_unknown_directive_is_an_error_with_a_suggestion() -> None:
    message = bad_line("deadtme 10")
    assert message.startswith("ha.cf:1: unknown directive 'deadtme'")
    assert "did you mean 'deadtime'?" in message


def test_all_errors_of_a_file_are_reported_together_in_line_order() -> None:
    text = BASE + "keepalive soon\nauto_failback maybe\nbogus 1\nudpport 0\n"
    found = errors(text)
    assert [m.split(":")[1] for m in found] == ["4", "5", "6", "7"]


def test_a_scalar_given_twice_warns_and_the_last_counts() -> None:
    hacf = parse("keepalive 2\nkeepalive 3\ndeadtime 30\n")
    assert hacf.timing is not None and hacf.timing.keepalive == 3
    assert "ha.cf:5: warning: keepalive: given again (first at ha.cf:4)" in warnings_of(hacf)[0]


def test_a_single_value_directive_with_two_values_is_an_error() -> None:
    assert bad_line("keepalive 1 2") == "ha.cf:1: keepalive: takes exactly one value, got 2"
    assert bad_line("keepalive") == "ha.cf:1: keepalive: takes exactly one value, got 0"


# -- nodes -------------------------------------------------------------------------------------


def test_nodes_several_per_line_commas_and_several_lines_ids_in_order() -> None:
    hacf = parse_hacf("node a b,c\nnode d\nbcast eth0\n", "ha.cf")
    assert [(n.name, n.node_id, n.votes) for n in hacf.nodes] == [
        ("a", 1, 1),
        ("b", 2, 1),
        ("c", 3, 1),
        ("d", 4, 1),
    ]
    assert hacf.node("c").source == Source("ha.cf", 1)


def test_node_id_and_votes() -> None:
    hacf = parse("node_id a 10\nvotes b 3\nvotes a 0\n")
    assert (hacf.node("a").node_id, hacf.node("a").votes) == (10, 0)
    assert (hacf.node("b").node_id, hacf.node("b").votes) == (2, 3)
    assert hacf.total_votes == 3


def test_duplicate_node_is_an_error_also_when_case_differs() -> None:
    found = errors("node a b\nnode A\nucast eth0 10.0.0.1\n")
    assert found == [
        "ha.cf:2: node: 'A' is listed twice (as 'a'; heartbeat ignores case), first at ha.cf:1"
    ]


def test_bad_node_name() -> None:
    assert "'a/b' is not a node name" in bad_line("node a/b")


def test_node_id_clash_and_unlisted_nodes() -> None:
    assert "would get id 1, already used by 'a'" in bad_line("node_id b 1")
    assert (
        bad_line("node_id zed 5") == "ha.cf:1: node_id: 'zed' is not a listed node (listed: a, b)"
    )
    assert bad_line("votes zed 5") == "ha.cf:1: votes: 'zed' is not a listed node (listed: a, b)"
    assert "is not a whole number from 1 to" in bad_line("node_id a 0")
    assert "is not a whole number from 0 to" in bad_line("votes a -1")
    assert "takes a node name and a number" in bad_line("votes a")


def test_no_node_at_all() -> None:
    found = errors("bcast eth0\n")
    assert found == [
        "ha.cf: no node directive: list every cluster node, as `uname -n` prints its name "
        "(node NAME [NAME...])"
    ]


# -- links -------------------------------------------------------------------------------------


def test_ucast_lines_on_one_interface_form_one_link_and_udpport_applies_at_the_end() -> None:
    hacf = parse_hacf(
        "node a b c\nucast eth1 10.0.0.1\nucast eth2 10.1.0.1\nucast eth1 10.0.0.2\n"
        "ucast eth1 10.0.0.3\nudpport 700\n",
        "ha.cf",
    )
    assert [link.name for link in hacf.links] == ["ucast eth1", "ucast eth2"]
    eth1 = hacf.links[0]
    assert eth1.kind == "ucast" and eth1.interface == "eth1"
    assert eth1.addresses == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert eth1.source == Source("ha.cf", 2)
    assert all(link.port == 700 for link in hacf.links) and hacf.udpport == 700


def test_ucast_errors() -> None:
    assert "takes an interface and a peer address" in bad_line("ucast eth0")
    assert "'peer.example.org' is not an IPv4 peer address" in bad_line(
        "ucast eth0 peer.example.org"
    )
    assert "hastack never resolves names" in bad_line("ucast eth0 peer")
    assert "is not a network interface name" in bad_line("ucast eth0/1 10.0.0.9")
    found = errors(BASE + "ucast eth0 10.0.0.1\n")
    assert found == ["ha.cf:4: ucast: 10.0.0.1 on eth0 is listed twice, first at ha.cf:2"]


def test_mcast() -> None:
    hacf = parse("mcast eth1 239.0.0.1 695 2 1\n")
    link = hacf.links[1]
    assert (link.kind, link.name, link.interface) == ("mcast", "mcast eth1", "eth1")
    assert (link.addresses, link.port, link.ttl, link.loop) == (("239.0.0.1",), 695, 2, True)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("mcast eth1 239.0.0.1 694 1", "takes 5 values (mcast IF GROUP PORT TTL LOOP"),
        (
            "mcast eth1 10.0.0.1 694 1 0",
            "10.0.0.1 is not a multicast group (224.0.0.0 - 239.255.255.255)",
        ),
        ("mcast eth1 239.0.0.1 0 1 0", "port '0' is not a whole number from 1 to 65535"),
        ("mcast eth1 239.0.0.1 694 0 0", "ttl '0' is not a whole number from 1 to 255"),
        ("mcast eth1 239.0.0.1 694 1 2", "loop '2' is not one of 0, 1"),
    ],
)
def test_mcast_errors(line: str, expected: str) -> None:
    assert expected in bad_line(line)


def test_second_mcast_on_one_interface() -> None:
    found = errors(BASE + "mcast eth1 239.0.0.1 694 1 0\nmcast eth1 239.0.0.2 694 1 0\n")
    assert found == ["ha.cf:5: mcast: a second mcast on eth1 (first at ha.cf:4): one per interface"]


def test_bcast_one_link_per_interface_and_udp_alias() -> None:
    hacf = parse("bcast eth1 eth2\nudp eth3\n")
    assert [link.name for link in hacf.links[1:]] == ["bcast eth1", "bcast eth2", "bcast eth3"]
    assert all(link.kind == "bcast" and link.port == 694 for link in hacf.links[1:])
    assert "ha.cf:5: warning: udp: 'udp' is an old name; write 'bcast'" in warnings_of(hacf)
    assert "eth1 is listed twice" in errors(BASE + "bcast eth1\nbcast eth1\n")[0]


def test_serial_and_baud_after_the_media() -> None:
    hacf = parse("serial /dev/ttyS0 /dev/ttyS1\nbaud 115200\n")
    serial = [link for link in hacf.links if link.kind == "serial"]
    assert [(s.name, s.device, s.baud) for s in serial] == [
        ("/dev/ttyS0", "/dev/ttyS0", 115200),
        ("/dev/ttyS1", "/dev/ttyS1", 115200),
    ]
    assert parse("serial /dev/ttyS0\n").links[1].baud == 19200


def test_serial_and_baud_errors() -> None:
    assert "'ttyS0' is not a device path" in bad_line("serial ttyS0")
    assert "'1234' is not one of 9600, 19200, 38400, 57600, 115200, 230400, 460800" in bad_line(
        "baud 1234"
    )
    hacf = parse("baud 9600\n")
    assert "ha.cf:4: warning: baud: no serial link to apply it to" in warnings_of(hacf)


def test_no_link_at_all() -> None:
    assert errors("node a b\n") == [
        "ha.cf: no heartbeat link: add at least one of ucast IF ADDR, mcast IF GROUP PORT TTL "
        "LOOP, bcast IF, serial DEVICE"
    ]


def test_with_only_ucast_every_node_needs_a_link_to_every_other() -> None:
    found = errors("node a b c\nucast eth0 10.0.0.2\n")
    assert found == [
        "ha.cf:2: ucast: 1 peer address(es) for 3 nodes: with only ucast links every node needs "
        "a link to every other, so list at least nodes - 1 = 2 addresses (usually one per node; "
        "each node ignores its own)"
    ]
    assert parse_hacf("node a b c\nucast eth0 10.0.0.2\nbcast eth1\n", "ha.cf").links


def test_bind() -> None:
    hacf = parse("bind eth0 127.0.0.2\n")
    assert hacf.links[0].bind == "127.0.0.2"
    found = errors(BASE + "bind eth9 127.0.0.2\n")
    assert found == [
        "ha.cf:4: bind: no ucast, mcast or bcast link uses interface eth9 (links on: eth0)"
    ]
    assert "eth0 is bound twice" in errors(BASE + "bind eth0 127.0.0.2\nbind eth0 127.0.0.3\n")[0]
    assert "is not an IPv4 local address" in bad_line("bind eth0 localhost")


def test_ipv6_media_are_refused() -> None:
    for directive in NOT_SUPPORTED:
        message = bad_line(f"{directive} eth0 ff12::1 694 1 0")
        assert message.startswith(
            f"ha.cf:1: {directive}: heartbeat directive not supported by hastack"
        )


# -- timing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2", 2.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("500ms", 0.5),
        ("1500msec", 1.5),
        ("2s", 2.0),
        ("2sec", 2.0),
        ("250000us", 0.25),
        ("2000usec", 0.002),
        ("300MS", 0.3),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    hacf = parse(f"keepalive {text}\ndeadtime 100\n")
    assert hacf.timing is not None and hacf.timing.keepalive == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "-1", "1.2.3", "5m", "1e3", "0x10"])
def test_bad_durations(text: str) -> None:
    message = bad_line(f"deadtime {text}")
    assert message.endswith("is not a duration: write seconds (2, 1.5, 2s) or milliseconds (500ms)")


def test_zero_and_huge_durations() -> None:
    assert bad_line("keepalive 0") == "ha.cf:1: keepalive: must be greater than 0, got 0s"
    assert "longer than a day" in bad_line("initdead 99999999999999999999999")


def test_timing_directives_and_derivation() -> None:
    hacf = parse("keepalive 2\ndeadtime 30\nwarntime 10\ninitdead 120\ndeadping 40\n")
    t = hacf.timing
    assert t is not None
    assert (t.keepalive, t.deadtime, t.warntime, t.initdead, t.deadping) == (2, 30, 10, 120, 40)
    assert hacf.warnings == ()


def test_keepalive_alone_warns_that_deadtime_is_derived() -> None:
    hacf = parse("keepalive 1\n")
    assert hacf.timing is not None and hacf.timing.deadtime == 4
    assert warnings_of(hacf) == [
        "ha.cf:4: warning: deadtime: not set: hastack derives 4 x keepalive = 4s (heartbeat would "
        "use 30s); set deadtime to choose"
    ]


def test_timing_relations_name_line_inequality_and_numbers() -> None:
    text = BASE + "keepalive 600ms\nwarntime 0.8\n\ndeadtime 1\n"
    assert errors(text) == [
        "ha.cf:7: deadtime (1s) must be greater than 2 x keepalive (2 x 0.6s = 1.2s)"
    ]
    found = errors(BASE + "keepalive 1\ndeadtime 10\nwarntime 12\ninitdead 5\ndeadping 2\n")
    assert found == [
        "ha.cf:6: warntime (12s) must be less than deadtime (10s)",
        "ha.cf:7: initdead (5s) must be at least deadtime (10s)",
        "ha.cf:8: deadping (2s) must be greater than 2 x keepalive (2 x 1s = 2s)",
    ]


def test_a_bad_timer_value_suppresses_misleading_relation_errors() -> None:
    assert errors(BASE + "keepalive soon\ndeadtime 1\n") == [
        "ha.cf:4: keepalive: 'soon' is not a duration: write seconds (2, 1.5, 2s) or "
        "milliseconds (500ms)"
    ]


def test_max_clock_drift() -> None:
    hacf = parse("max_clock_drift 2%\n")
    assert hacf.timing is not None and hacf.timing.max_drift == pytest.approx(0.02)
    assert parse("max_clock_drift 0.005\n").timing.max_drift == pytest.approx(0.005)  # type: ignore[union-attr]
    assert parse().timing.max_drift == 0.01  # type: ignore[union-attr]
    assert "must be at least 0 and less than 50%" in bad_line("max_clock_drift 60%")
    assert "is not a fraction (0.01) or a percentage (1%)" in bad_line("max_clock_drift lots")


# -- the other heartbeat directives ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("on", "on"),
        ("off", "off"),
        ("legacy", "legacy"),
        ("Legacy", "legacy"),
        ("yes", "on"),
        ("no", "off"),
        ("true", "on"),
        ("false", "off"),
        ("y", "on"),
        ("0", "off"),
    ],
)
def test_auto_failback(value: str, expected: str) -> None:
    assert parse(f"auto_failback {value}\n").auto_failback == expected


def test_auto_failback_error_names_line_and_allowed_values() -> None:
    assert bad_line("auto_failback maybe").startswith(
        "ha.cf:1: auto_failback: 'maybe' is not one of on, off, legacy"
    )


def test_defaults_when_nothing_is_set() -> None:
    hacf = parse()
    assert (hacf.auto_failback, hacf.crm, hacf.autojoin, hacf.logfacility) == (
        "legacy",
        "off",
        "none",
        "daemon",
    )
    assert (hacf.udpport, hacf.debug, hacf.realtime, hacf.use_logd) == (694, 0, True, False)
    assert (hacf.cluster_name, hacf.run_dir, hacf.two_node, hacf.wait_for_all) == (
        "hastack",
        "/run/hastack",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("crm on", "on"),
        ("crm respawn", "respawn"),
        ("crm no", "off"),
        ("pacemaker respawn", "respawn"),
        ("pacemaker yes", "on"),
    ],
)
def test_crm(line: str, expected: str) -> None:
    assert parse(line + "\n").crm == expected


def test_crm_errors() -> None:
    assert "'sometimes' is not one of on, off, respawn" in bad_line("crm sometimes")
    assert "heartbeat's 'manual' mode is not supported by hastack" in bad_line("pacemaker manual")


def test_autojoin() -> None:
    assert parse("autojoin none\n").autojoin == "none"
    hacf = parse("autojoin any\n")
    assert hacf.autojoin == "any"
    assert "hastack does not let unlisted nodes join" in warnings_of(hacf)[0]
    assert "'all' is not one of none, other, any" in bad_line("autojoin all")


def test_watchdog_ping_ping_group() -> None:
    hacf = parse(
        "watchdog /dev/watchdog\nping 10.9.0.1 10.9.0.2\nping_group gw 10.9.0.3 10.9.0.4\n"
    )
    assert hacf.watchdog == "/dev/watchdog"
    assert hacf.ping == ("10.9.0.1", "10.9.0.2")
    (group,) = hacf.ping_groups
    assert (group.name, group.addresses, group.source) == (
        "gw",
        ("10.9.0.3", "10.9.0.4"),
        Source("ha.cf", 6),
    )
    assert "'watchdog' is not a device path" in bad_line("watchdog watchdog")
    assert "'router' is not an IPv4 address" in bad_line("ping router")
    assert "takes a group name and at least one address" in bad_line("ping_group gw")
    assert "'a' is also a node name" in bad_line("ping_group a 10.9.0.1")
    assert "10.9.0.1 is listed twice" in errors(BASE + "ping 10.9.0.1\nping 10.9.0.1\n")[0]


def test_ping_node_that_is_a_cluster_node_warns() -> None:
    hacf = parse("ping 10.0.0.1\n")
    assert "do not use a cluster node as a ping node" in warnings_of(hacf)[0]


def test_stonith_and_stonith_host() -> None:
    hacf = parse(
        "stonith baytech /etc/ha.d/conf/stonith.baytech\n"
        "stonith_host * baytech 10.0.0.3 mylogin secret\nstonith_host a rps10 /dev/ttyS1 b 0\n"
    )
    assert hacf.stonith == ("baytech", "/etc/ha.d/conf/stonith.baytech")
    assert [(h.from_host, h.device_type, h.params) for h in hacf.stonith_hosts] == [
        ("*", "baytech", ("10.0.0.3", "mylogin", "secret")),
        ("a", "rps10", ("/dev/ttyS1", "b", "0")),
    ]
    assert "takes a device type and a config file" in bad_line("stonith baytech")
    assert bad_line("stonith_host zed rps10 /dev/ttyS1") == (
        "ha.cf:1: stonith_host: 'zed' is neither * nor a listed node (listed: a, b)"
    )


def test_logging_and_other_settings() -> None:
    hacf = parse(
        "logfacility local7\nlogfile /var/log/ha.log\ndebugfile /var/log/ha-debug\nuse_logd yes\n"
        "realtime off\ndebug 3\n"
    )
    assert (hacf.logfacility, hacf.logfile, hacf.debugfile) == (
        "local7",
        "/var/log/ha.log",
        "/var/log/ha-debug",
    )
    assert (hacf.use_logd, hacf.realtime, hacf.debug) == (True, False, 3)
    assert parse("logfacility none\n").logfacility is None
    assert "'loud' is not one of none, auth" in bad_line("logfacility loud")
    assert "'256' is not a whole number from 0 to 255" in bad_line("debug 256")
    assert "'maybe' is not one of on, off (also yes/no" in bad_line("use_logd maybe")


def test_compression_is_recorded_with_a_warning() -> None:
    hacf = parse("compression bz2\ntraditional_compression on\n")
    assert (hacf.compression, hacf.traditional_compression) == ("bz2", True)
    assert all("never compressed" in w for w in warnings_of(hacf))
    assert "'lzma' is not one of zlib, bz2" in bad_line("compression lzma")


@pytest.mark.parametrize("directive", sorted(NOT_ACTED_ON))
def test_known_heartbeat_directives_not_acted_on_warn(directive: str) -> None:
    hacf = parse(f"{directive} something\n")
    (warning,) = warnings_of(hacf)
    assert warning.startswith(
        f"ha.cf:4: warning: {directive}: heartbeat directive accepted but not acted on by hastack ("
    )


# -- hastack's own -----------------------------------------------------------------------------


def test_cluster_name_and_heartbeats_cluster() -> None:
    assert parse("cluster_name prod\n").cluster_name == "prod"
    assert parse("cluster prod\n").cluster_name == "prod"
    assert parse("cluster prod\ncluster_name prod\n").cluster_name == "prod"
    found = errors(BASE + "cluster prod\ncluster_name test\n")
    assert found == ["ha.cf:5: cluster_name: 'test' contradicts cluster 'prod' at ha.cf:4"]
    assert "is not a cluster name" in bad_line("cluster_name a/b")


def test_two_node_and_wait_for_all() -> None:
    hacf = parse("two_node on\n")
    assert hacf.two_node and hacf.wait_for_all  # wait_for_all defaults on, like votequorum
    hacf = parse("two_node on\nwait_for_all off\n")
    assert hacf.two_node and not hacf.wait_for_all
    assert parse("wait_for_all on\n").wait_for_all
    found = errors("node a b c\nbcast eth0\ntwo_node on\n")
    assert found == ["ha.cf:3: two_node: on needs exactly 2 nodes, 3 listed (a, b, c)"]


def test_votes_and_expected_votes_relations() -> None:
    assert parse("expected_votes 3\n").total_votes == 3
    found = errors("node a b c d\nbcast eth0\nexpected_votes 2\n")
    assert found == [
        "ha.cf:3: expected_votes: 2 is less than the nodes' votes (4): two partitions could both "
        "have more than half of 2; use at least 4"
    ]
    found = errors(BASE + "votes a 0\nvotes b 0\nwait_for_all on\n")
    assert "ha.cf:4: votes: every node has 0 votes: no partition could ever have quorum" in found
    assert (
        "ha.cf:6: wait_for_all: on is only meaningful when nodes have votes (all have 0)" in found
    )
    assert "contradicts two_node on" in errors(BASE + "two_node on\nexpected_votes 3\n")[0]


def test_quorum_server_and_run_dir() -> None:
    for value in ("10.0.0.9", "10.0.0.9:5403", "qs.example.org:5403", "[fd00::1]:5403", "fd00::1"):
        assert parse(f"quorum_server {value}\n").quorum_server == value
    assert "is not HOST[:PORT]" in bad_line("quorum_server [fd00::1")
    assert "'0' is not a whole number from 1 to 65535" in bad_line("quorum_server qs:0")
    assert parse("run_dir /tmp/n1\n").run_dir == "/tmp/n1"
    assert "'run' is not an absolute path" in bad_line("run_dir run")


def test_load_hacf_reads_a_file(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "ha.cf")
    with open(path, "w") as f:
        f.write(BASE)
    assert [n.name for n in load_hacf(path).nodes] == ["a", "b"]
    with open(path, "wb") as f:
        f.write(BASE.encode() + b"logfile /var/\xff\n")
    with pytest.raises(ConfigError) as info:
        load_hacf(path)
    assert str(info.value) == f"{path}:4: not UTF-8 text"
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_hacf(path + ".missing")


# -- Debian's sample ha.cf ---------------------------------------------------------------------


def _sample() -> str:
    if not os.path.exists(SAMPLE_HACF):
        pytest.skip(f"{SAMPLE_HACF} is absent: install Debian's heartbeat package to run this test")
    with gzip.open(SAMPLE_HACF, "rt", encoding="utf-8") as f:
        return f.read()


def test_sample_as_shipped_is_understood_line_by_line() -> None:
    # The sample sets only logfacility and auto_failback; every line is understood, and the
    # only problems are the two things heartbeat itself requires: nodes and a link.
    hacf, problems, warnings = read_hacf(_sample(), "ha.cf")
    assert hacf is None
    assert [p.message for p in problems] == [
        "ha.cf: no node directive: list every cluster node, as `uname -n` prints its name "
        "(node NAME [NAME...])",
        "ha.cf: no heartbeat link: add at least one of ucast IF ADDR, mcast IF GROUP PORT TTL "
        "LOOP, bcast IF, serial DEVICE",
    ]
    # the two directives it sets are kept; logfacility is not acted on (hastack logs to
    # stderr and its log files), and says so; auto_failback is (R1's resource groups)
    assert sorted(w.message.split(":")[0] for w in warnings) == ["logfacility"]
    assert all("not acted on" in w.message for w in warnings)
    hacf = parse_hacf(_sample() + "\nnode ken3 kathy\nbcast eth0\n", "ha.cf")
    assert (hacf.logfacility, hacf.auto_failback) == ("local0", "on")


def _uncommented_sample(skip: set[str]) -> str:
    """The sample with its example directive lines (`#keepalive 2`, ...) uncommented."""
    out = []
    for line in _sample().split("\n"):
        m = re.match(r"#([a-z_]+)[ \t]", line)
        if m and m.group(1) not in skip:
            line = line[1:]
        out.append(line)
    return "\n".join(out)


def test_sample_with_its_examples_uncommented() -> None:
    hacf, problems, warnings = read_hacf(_uncommented_sample({"hbaping"}), "ha.cf")
    assert problems == []
    assert hacf is not None and hacf.timing is not None
    t = hacf.timing
    assert (t.keepalive, t.deadtime, t.warntime, t.initdead, t.deadping) == (2, 30, 10, 120, 30)
    assert [n.name for n in hacf.nodes] == ["ken3", "kathy"]
    assert hacf.udpport == 694 and hacf.auto_failback == "on" and hacf.logfacility == "local0"
    assert [link.name for link in hacf.links] == [
        "/dev/ttyS0",
        "/dev/cuaa0",
        "/dev/cuad0",
        "/dev/cua/a",
        "bcast eth0",
        "bcast eth1",
        "bcast eth2",
        "bcast le0",
        "bcast le1",
        "bcast le2",
        "mcast eth0",
        "ucast eth0",
    ]
    mcast = hacf.links[10]
    assert (mcast.addresses, mcast.port, mcast.ttl, mcast.loop) == (("225.0.0.1",), 694, 1, False)
    assert hacf.links[11].addresses == ("192.168.1.2",)
    assert all(link.baud == 19200 for link in hacf.links[:4])
    assert hacf.stonith == ("baytech", "/etc/ha.d/conf/stonith.baytech")
    assert [h.from_host for h in hacf.stonith_hosts] == ["*", "ken3", "kathy"]
    assert hacf.watchdog == "/dev/watchdog"
    assert hacf.ping == ("10.10.10.254",)
    assert hacf.ping_groups[0].addresses == ("10.10.10.254", "10.10.10.253")
    assert (hacf.debugfile, hacf.logfile) == ("/var/log/ha-debug", "/var/log/ha-log")
    assert (hacf.realtime, hacf.debug, hacf.compression) == (False, 1, "bz2")
    not_acted = sorted({w.message.split(":")[0] for w in warnings if "not acted on" in w.message})
    assert not_acted == [
        "apiauth",
        "compression_threshold",
        "conn_logd_time",
        "hbgenmethod",
        "hopfudge",
        "logfacility",
        "msgfmt",
        "respawn",
    ]
    assert any(w.message.startswith("compression: recorded") for w in warnings)


def test_sample_hbaping_example_is_refused() -> None:
    _, problems, _ = read_hacf(_uncommented_sample(set()), "ha.cf")
    assert [str(p) for p in problems] == [
        "ha.cf:246: hbaping: heartbeat directive not supported by hastack (Fibre Channel HBA "
        "ping nodes are not supported)"
    ]


def test_quorum_server_tls() -> None:
    hacf = parse(
        "quorum_server 10.0.0.9:5403\nquorum_server_tls /etc/c.pem /etc/c.key /etc/ca.pem\n"
    )
    assert hacf.quorum_server == "10.0.0.9:5403"
    assert hacf.quorum_server_tls == ("/etc/c.pem", "/etc/c.key", "/etc/ca.pem")
    assert "takes the node's certificate, its key and the CA" in bad_line(
        "quorum_server_tls /etc/c.pem"
    )
    assert "'c.pem' is not an absolute path" in bad_line("quorum_server_tls c.pem /k /ca")
