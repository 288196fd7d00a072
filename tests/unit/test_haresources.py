"""hastack.crm.haresources: heartbeat R1 haresources -> a CIB that validates."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from hastack.config.errors import ConfigError
from hastack.crm.cib.validate import DEFAULT_SCHEMA_DIR, is_valid, validate
from hastack.crm.haresources import convert_haresources, parse_haresources, stickiness

SAMPLE = """\
# two groups, as in heartbeat's examples
node1 10.0.0.1/24/eth0 Filesystem::/dev/sdb1::/srv/data::ext4 \\
      httpd   # the web server
node2 IPaddr2::10.0.0.2/255.255.255.0/eth1/10.0.0.255 drbddisk::r0 MailTo::root@x::failover

node1 squid
"""


def tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def primitive(root: etree._Element, rid: str) -> etree._Element:
    found = root.xpath("//primitive[@id=$id]", id=rid)
    assert found, f"no primitive {rid}"
    return found[0]


def params(element: etree._Element) -> dict[str, str]:
    return {n.get("name"): n.get("value") for n in element.iterfind("instance_attributes/nvpair")}


def test_each_line_is_a_group_with_a_location_preference() -> None:
    root = tree(convert_haresources(SAMPLE, "haresources", "on"))
    groups = root.findall("configuration/resources/group")
    assert [g.get("id") for g in groups] == ["group_1", "group_2"]
    assert [p.get("id") for p in groups[0].iterfind("primitive")] == [
        "IPaddr2_10.0.0.1",
        "Filesystem_srv_data",
        "httpd",
    ]
    # a line with one resource is a lone primitive
    assert root.find("configuration/resources/primitive").get("id") == "squid"
    locations = [
        (c.get("rsc"), c.get("node"), c.get("score"))
        for c in root.iterfind("configuration/constraints/rsc_location")
    ]
    assert locations == [
        ("group_1", "node1", "100"),
        ("group_2", "node2", "100"),
        ("squid", "node1", "100"),
    ]
    assert [n.get("uname") for n in root.iterfind("configuration/nodes/node")] == ["node1", "node2"]


def test_resource_forms() -> None:
    root = tree(convert_haresources(SAMPLE, "haresources"))
    ip1 = primitive(root, "IPaddr2_10.0.0.1")
    assert (ip1.get("class"), ip1.get("provider"), ip1.get("type")) == (
        "ocf",
        "heartbeat",
        "IPaddr2",
    )
    assert params(ip1) == {"ip": "10.0.0.1", "cidr_netmask": "24", "nic": "eth0"}
    ip2 = primitive(root, "IPaddr2_10.0.0.2")
    assert params(ip2) == {
        "ip": "10.0.0.2",
        "cidr_netmask": "24",
        "nic": "eth1",
        "broadcast": "10.0.0.255",
    }
    fs = primitive(root, "Filesystem_srv_data")
    assert fs.get("type") == "Filesystem"
    assert params(fs) == {"device": "/dev/sdb1", "directory": "/srv/data", "fstype": "ext4"}
    drbd = primitive(root, "drbddisk_r0")
    assert (drbd.get("class"), drbd.get("type"), params(drbd)) == (
        "heartbeat",
        "drbddisk",
        {"1": "r0"},
    )
    mail = primitive(root, "MailTo_root_x_failover")
    assert params(mail) == {"1": "root@x", "2": "failover"}
    httpd = primitive(root, "httpd")
    assert (httpd.get("class"), httpd.get("type"), httpd.get("provider")) == ("lsb", "httpd", None)


def test_a_bare_name_found_in_resource_d_is_an_r1_script() -> None:
    root = tree(convert_haresources("node1 httpd\n", "h", r1_scripts={"httpd"}))
    assert primitive(root, "httpd").get("class") == "heartbeat"


def test_every_primitive_is_monitored() -> None:
    root = tree(convert_haresources(SAMPLE, "haresources"))
    for prim in root.iter("primitive"):
        assert [op.get("name") for op in prim.iterfind("operations/op")] == ["monitor"]


@pytest.mark.parametrize(("mode", "value"), [("on", "0"), ("off", "INFINITY"), ("legacy", "0")])
def test_auto_failback_sets_the_stickiness(mode: str, value: str) -> None:
    root = tree(convert_haresources("n1 a\n", "h", mode))  # type: ignore[arg-type]
    pairs = root.xpath("//rsc_defaults//nvpair[@name='resource-stickiness']")
    assert [p.get("value") for p in pairs] == [value] and stickiness(mode) == value  # type: ignore[arg-type]


def test_a_bad_auto_failback_is_refused() -> None:
    with pytest.raises(ValueError, match="not on, off or legacy"):
        convert_haresources("n1 a\n", "h", "sometimes")  # type: ignore[arg-type]


def test_ids_are_unique_when_resources_look_alike() -> None:
    root = tree(convert_haresources("n1 Delay::5::5\nn2 Delay::5::5::x\nn1 a.b a_b\n", "h"))
    ids = [e.get("id") for e in root.iter() if isinstance(e.tag, str) and e.get("id")]
    assert len(ids) == len(set(ids))


def test_resource_ids_that_would_start_with_a_digit_are_prefixed() -> None:
    root = tree(convert_haresources("n1 3ware\n", "h"))
    assert primitive(root, "r_3ware").get("type") == "3ware"


def test_the_output_validates() -> None:
    if not (DEFAULT_SCHEMA_DIR / "pacemaker-3.7.rng").exists():
        pytest.skip("Debian's pacemaker-schemas is not installed: cannot check the schema")
    xml = convert_haresources(SAMPLE, "haresources", "off", nodes=["node1", "node2", "node3"])
    assert validate(xml, "out.xml") == []


# --- errors: file:line -------------------------------------------------------------------------


def problems_of(text: str, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_haresources(text, "haresources", **kw)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_errors_name_file_and_line() -> None:
    text = "node1 10.0.0.1\n# c\nnode2 10.0.0.300/24\nnode1 Filesystem::/dev/x\n"
    assert problems_of(text) == [
        "haresources:3: '10.0.0.300' is not an IPv4 address",
        "haresources:4: 'Filesystem::/dev/x': write Filesystem::DEVICE::DIRECTORY"
        "[::FSTYPE[::OPTIONS]]",
    ]


def test_continued_lines_report_their_first_line() -> None:
    text = "\nnode1 a \\\n  b \\\n  IPaddr::1.2.3.4/99\n"
    assert problems_of(text) == ["haresources:2: netmask /99 is not 0-32 bits"]


def test_a_resource_used_twice_is_an_error() -> None:
    assert problems_of("n1 httpd\nn2 httpd\n") == [
        "haresources:2: 'httpd' is already managed by line 1; a resource belongs to one group"
    ]


def test_nodes_are_checked_against_ha_cf() -> None:
    assert problems_of("nodeX a\n", nodes=["node1", "node2"]) == [
        "haresources:1: node 'nodeX' is not one of ha.cf's nodes (node1, node2)"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("node1\n", "node 'node1' is given no resources"),
        ("-node a\n", "'-node' is not a node name"),
        ("n1 bad$name\n", "the resource name 'bad$name' may hold only"),
        ("n1 IPaddr\n", "write IPaddr::ADDRESS"),
        ("n1 IPaddr::1.2.3.4/24/eth0/5.6.7.8/extra\n", "write ADDRESS[/MASK"),
        ("n1 IPaddr::1.2.3.4/255.0.255.0\n", "is not a netmask"),
        ("n1 IPaddr::1.2.3.4/24/bad$nic\n", "is not a network interface name"),
        ("n1 IPaddr::1.2.3.4/24/eth0/nope\n", "broadcast 'nope' is not an IPv4 address"),
        ("n1 Filesystem::/dev/a::relative\n", "is not an absolute path"),
    ],
)
def test_bad_lines(text: str, message: str) -> None:
    found = problems_of(text)
    assert len(found) == 1 and found[0].startswith("haresources:1: ") and message in found[0]


def test_an_empty_file_is_an_error() -> None:
    assert problems_of("# nothing\n\n") == ["haresources:1: no resources: the file is empty"]


def test_heartbeats_sample_haresources_if_installed() -> None:
    sample = Path("/usr/share/doc/heartbeat/haresources.gz")
    if not sample.exists():
        pytest.skip(f"{sample} is not installed (Debian's heartbeat)")
    text = gzip.decompress(sample.read_bytes()).decode()
    # The sample is all comments, with example lines commented out: uncomment the examples
    # (lines like "#just.linux-ha.org 135.9.216.110 httpd") and convert them.
    examples = [
        line[1:]
        for line in text.splitlines()
        if line.startswith("#")
        and len(line[1:].split()) >= 2
        and "." in line.split()[0]
        and not line.startswith("# ")
    ]
    if not examples:
        pytest.skip("the installed sample has no example lines")
    seen: set[str] = set()
    unique = []
    for line in examples:  # the sample repeats resources across alternatives
        words = line.split()
        if not any(w in seen for w in words[1:]):
            seen.update(words[1:])
            unique.append(line)
    xml = convert_haresources("\n".join(unique) + "\n", "sample")
    assert is_valid(validate(xml, "sample.xml"))


# --- fuzzing -----------------------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "node1",
        "node2",
        "10.0.0.1",
        "10.0.0.1/24/eth0",
        "IPaddr::10.0.0.9/8",
        "IPaddr2::10.1.1.1/16/eth1/10.1.255.255",
        "Filesystem::/dev/sda1::/mnt::xfs",
        "Filesystem::/dev/sdb::/data::ext4::noatime",
        "httpd",
        "drbddisk::r0",
        "MailTo::a@b::subj",
        "Delay::1::2",
        "::",
        "x::",
        "#",
        "\\",
        "1.2.3.999",
        "IPaddr::",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_WORDS, min_size=1, max_size=5), max_size=5))
def test_fuzzed_haresources_give_a_valid_cib_or_a_clear_error(lines: list[list[str]]) -> None:
    text = "\n".join(" ".join(words) for words in lines) + "\n"
    try:
        xml = convert_haresources(text, "fuzz")
    except ConfigError as exc:
        assert exc.problems and all(str(p).startswith("fuzz:") for p in exc.problems)
        return
    problems = validate(xml, "fuzz.xml")
    assert is_valid(problems), [str(p) for p in problems]
