"""OCF meta-data: Debian's real agents parse, bad XML is a clear error, durations, checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.agents.metadata import (
    AgentMetadata,
    MetadataError,
    check_parameters,
    parse_duration,
    parse_metadata,
)

OCF_ROOT = Path("/usr/lib/ocf")
REAL_AGENTS = [
    "heartbeat/Dummy",
    "heartbeat/IPaddr2",
    "heartbeat/Filesystem",
    "heartbeat/anything",
    "pacemaker/Dummy",
    "pacemaker/Stateful",
    "pacemaker/ping",
]


def _real_meta_data(agent: str) -> bytes:
    path = OCF_ROOT / "resource.d" / agent
    if not path.exists():
        print(f"skipping: {path} is missing (install resource-agents/pacemaker-resource-agents)")
        pytest.skip(f"{path} is not installed (resource-agents / pacemaker-resource-agents)")
    done = subprocess.run(
        [str(path), "meta-data"],
        env={"OCF_ROOT": str(OCF_ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("agent", REAL_AGENTS)
def test_real_agents_meta_data_parses(agent: str) -> None:
    meta = parse_metadata(_real_meta_data(agent), f"ocf:{agent.replace('/', ':')}")
    assert meta.name == agent.split("/")[1]
    assert meta.shortdesc and meta.longdesc
    assert meta.parameters and all(p.name for p in meta.parameters)
    names = {a.name for a in meta.actions}
    assert {"start", "stop", "monitor", "meta-data"} <= names
    assert meta.advised_timeout("start") is not None
    assert meta.advised_timeout("start") > 0  # type: ignore[operator]


def test_ipaddr2_meta_data_details() -> None:
    meta = parse_metadata(_real_meta_data("heartbeat/IPaddr2"), "ocf:heartbeat:IPaddr2")
    ip = meta.parameter("ip")
    assert ip is not None and ip.required and ip.unique and ip.type == "string"
    nic = meta.parameter("nic")
    assert nic is not None and not nic.required
    assert meta.advised_timeout("start") == 20.0
    monitor = meta.action("monitor")
    assert monitor is not None and monitor.interval == 10.0 and monitor.depth == 0
    assert check_parameters(meta, {}) == [
        f"missing required parameter ip ({ip.shortdesc}) for IPaddr2"
    ]
    assert check_parameters(meta, {"ip": "10.0.0.1"}) == []


def test_stateful_meta_data_roles_and_monitors() -> None:
    meta = parse_metadata(_real_meta_data("pacemaker/Stateful"), "ocf:pacemaker:Stateful")
    monitors = [a for a in meta.actions if a.name == "monitor"]
    assert {(a.role, a.interval) for a in monitors} == {("Promoted", 10.0), ("Unpromoted", 11.0)}
    assert meta.action("monitor", 11.0).role == "Unpromoted"  # type: ignore[union-attr]
    assert meta.advised_timeout("promote") == 10.0
    assert meta.ocf_version == "1.1"
    state = meta.parameter("state")
    assert state is not None and state.unique_group == "state"
    envfile = meta.parameter("envfile")
    assert envfile is not None and envfile.reloadable


METADATA = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Thing" version="2.3">
<version>1.1</version>
<longdesc lang="de">Ein Ding</longdesc>
<longdesc lang="en">A   thing
  that is tested</longdesc>
<shortdesc lang="en">Thing</shortdesc>
<parameters>
<parameter name="path" required="1" unique="true">
<longdesc lang="en">Where</longdesc><shortdesc lang="en">Path</shortdesc>
<content type="string"/>
</parameter>
<parameter name="count">
<shortdesc lang="en">How many</shortdesc>
<content type="integer" default="3"/>
</parameter>
<parameter name="mode">
<content type="select" default="a"><option value="a"/><option value="b"/></content>
</parameter>
<parameter name="old"><deprecated/><content type="boolean" default="false"/></parameter>
</parameters>
<actions>
<action name="start" timeout="1min"/>
<action name="monitor" timeout="PT30S" interval="10" depth="10" start-delay="500ms"/>
<action name="notify" timeout="5s"/>
</actions>
</resource-agent>
"""


def test_parse_metadata_reads_every_field() -> None:
    meta = parse_metadata(METADATA, "ocf:acme:Thing")
    assert (meta.name, meta.version, meta.ocf_version) == ("Thing", "2.3", "1.1")
    assert meta.longdesc == "A thing that is tested"  # English, whitespace collapsed
    path, count, mode, old = meta.parameters
    assert (path.name, path.required, path.unique, path.type, path.default) == (
        "path",
        True,
        True,
        "string",
        None,
    )
    assert (count.type, count.default, count.required, count.shortdesc) == (
        "integer",
        "3",
        False,
        "How many",
    )
    assert mode.options == ("a", "b")
    assert old.deprecated and not path.deprecated
    start, monitor, _ = meta.actions
    assert start.timeout == 60.0 and start.interval is None
    assert (monitor.timeout, monitor.interval, monitor.depth, monitor.start_delay) == (
        30.0,
        10.0,
        10,
        0.5,
    )
    assert meta.advised_timeout("monitor", 10) == 30.0
    assert meta.advised_timeout("reload") is None
    assert meta.action("nothing") is None


def test_parse_metadata_accepts_bytes_and_str_with_an_encoding_declaration() -> None:
    text = '<?xml version="1.0" encoding="UTF-8"?><resource-agent name="x"/>'
    assert parse_metadata(text, "s").name == "x"
    assert parse_metadata(text.encode(), "b").name == "x"


def test_check_parameters_reports_missing_unknown_and_bad_values() -> None:
    meta = parse_metadata(METADATA, "ocf:acme:Thing")
    problems = check_parameters(meta, {"count": "many", "mode": "c", "old": "maybe", "x": "1"})
    assert problems == [
        "missing required parameter path (Path) for Thing",
        "parameter count: 'many' is not an integer",
        "parameter mode: 'c' is not one of a, b",
        "parameter old: 'maybe' is not a boolean (true/false, yes/no, 1/0)",
        "unknown parameter x for Thing",
    ]
    assert check_parameters(meta, {"path": "/x", "count": "-4", "old": "yes"}) == []


def _ra(body: str) -> str:
    return f"<resource-agent>{body}</resource-agent>"


BAD_METADATA = [
    ("this is not xml\n", 1, "not valid XML"),
    ("<?xml version='1.0'?>\n<resource-agent>\n<parameters>\n</resource-agent>\n", 4, "not valid"),
    ("<resource-agent>\n<actions>\n<action timeout='5s'/>\n</actions>\n", 5, "not valid XML"),
    ("<resource-agent>\n<actions>\n<action timeout='5s'/>", 3, "not valid XML"),
    (_ra("<actions>\n\n<action timeout='5s'/></actions>"), 3, "<action> without a name"),
    (_ra("\n<parameters><parameter/></parameters>"), 2, "<parameter> without a name"),
    (_ra("<actions>\n\n<action name='start' timeout='soon'/></actions>"), 3, "duration 'soon'"),
    (_ra("<actions>\n<action name='x' depth='deep'/></actions>"), 2, "not a whole number"),
    ("\n<html><body/></html>", 2, "expected <resource-agent>"),
]


@pytest.mark.parametrize(("xml", "line", "says"), BAD_METADATA)
def test_bad_metadata_is_an_error_naming_source_and_line(xml: str, line: int, says: str) -> None:
    for data in (xml, xml.encode()):
        with pytest.raises(MetadataError) as err:
            parse_metadata(data, "ocf:acme:Bad")
        assert str(err.value).startswith(f"ocf:acme:Bad: line {line}: ")
        assert says in str(err.value)


def test_an_unknown_encoding_is_an_error_for_bytes_and_ignored_for_text() -> None:
    xml = '<?xml version="1.0" encoding="no-such"?><resource-agent name="x"/>'
    with pytest.raises(MetadataError, match=r"^ocf:acme:Bad: line 1: "):
        parse_metadata(xml.encode(), "ocf:acme:Bad")
    assert parse_metadata(xml, "ocf:acme:Bad").name == "x"  # text is already decoded


def test_empty_metadata_is_an_error() -> None:
    with pytest.raises(MetadataError, match="ocf:acme:Bad: empty meta-data"):
        parse_metadata(b"  \n", "ocf:acme:Bad")


def test_entities_are_not_expanded() -> None:
    xml = (
        '<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        '<resource-agent name="x"><shortdesc>&e;</shortdesc></resource-agent>'
    )
    assert "root:" not in parse_metadata(xml, "x").shortdesc


def test_an_agent_printing_garbage_gives_a_clear_error(tmp_path: Path) -> None:
    agent = tmp_path / "Garbage"
    agent.write_text("#!/bin/sh\necho '<resource-agent name=\"g\">'\necho 'Usage: oops'\n")
    agent.chmod(0o755)
    out = subprocess.run([str(agent), "meta-data"], capture_output=True, timeout=10).stdout
    with pytest.raises(MetadataError) as err:
        parse_metadata(out, str(agent))
    assert str(err.value).startswith(f"{agent}: line ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20s", 20.0),
        ("20", 20.0),
        (" 20 ", 20.0),
        ("20 s", 20.0),
        ("20sec", 20.0),
        ("20S", 20.0),
        ("100ms", 0.1),
        ("100msec", 0.1),
        ("1500us", 0.0015),
        ("2min", 120.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("2hr", 7200.0),
        ("1.5s", 1.5),
        ("0", 0.0),
        ("PT1M30S", 90.0),
        ("PT0.5S", 0.5),
        ("P1D", 86400.0),
        ("P1W", 604800.0),
        ("P1DT1H", 90000.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "s", "ms", "-5s", "5 minutes", "5x", "P", "PT", "P1H", "1e3", "inf", "nan", "5s5"]
)
def test_parse_duration_errors_name_the_text(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert repr(text) in str(err.value)


def test_parse_duration_refuses_numbers_too_large() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("9" * 400)


@given(st.text())
def test_parse_duration_fuzz(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert seconds >= 0


@given(st.integers(0, 10**9), st.sampled_from(["", "s", "ms", "m", "h", "min", "sec"]))
def test_parse_duration_of_generated_values(number: int, unit: str) -> None:
    scale = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600}[unit]
    assert parse_duration(f"{number}{unit}") == pytest.approx(number * scale)


@given(st.one_of(st.text(), st.binary()))
def test_parse_metadata_fuzz_any_input(data: str | bytes) -> None:
    try:
        meta = parse_metadata(data, "fuzz")
    except MetadataError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    assert isinstance(meta, AgentMetadata)


@settings(max_examples=200)
@given(st.data())
def test_parse_metadata_fuzz_mutations_of_valid_xml(data: st.DataObject) -> None:
    raw = bytearray(METADATA.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(raw) - 1))
        what = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        byte = data.draw(st.integers(0, 255))
        if what == "delete":
            del raw[where]
        elif what == "replace":
            raw[where] = byte
        else:
            raw.insert(where, byte)
    try:
        parse_metadata(bytes(raw), "mutant")
    except MetadataError as exc:
        assert str(exc).startswith("mutant: ")


def test_every_installed_ocf_agent_meta_data_parses() -> None:
    from hastack.agents.names import list_agents, locate

    agents = list_agents(standard="ocf")
    if not agents:
        print("skipping: no OCF agents installed under /usr/lib/ocf (resource-agents)")
        pytest.skip("no OCF agents installed (resource-agents)")
    failures = []
    for spec in agents:
        done = subprocess.run(
            [str(locate(spec)), "meta-data"],
            env={"OCF_ROOT": str(OCF_ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            capture_output=True,
            timeout=60,
        )
        try:
            meta = parse_metadata(done.stdout, str(spec))
        except MetadataError as exc:
            failures.append(f"{exc} (exit {done.returncode})")
            continue
        if meta.name != spec.type or not meta.actions:
            failures.append(f"{spec}: name {meta.name!r}, {len(meta.actions)} actions")
    assert failures == []
