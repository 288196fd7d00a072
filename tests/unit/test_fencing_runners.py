"""hastack.fencing.runners and .metadata: building a device's invocation, reading its exit code
and output, parsing metadata, and the subprocess shell (with small scripts written here).

Debian's real agents (fence_dummy, cluster-glue's stonith and meatware) are exercised in
tests/lab/test_fencing_agents_real.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hastack.fencing.metadata import (
    FENCE_ACTIONS,
    DeviceMetadata,
    MetadataError,
    builtin_metadata,
    glue_metadata_from_names,
    parse_agent_metadata,
    parse_glue_confignames,
)
from hastack.fencing.runners import (
    OUTPUT_TAIL,
    DeviceCall,
    DeviceResult,
    FencePaths,
    FenceRunnerError,
    agent_metadata,
    check_call,
    device_kind,
    external_invocation,
    fence_agent_stdin,
    glue_argv,
    glue_env,
    interpret,
    last_line,
    mask_secrets,
    parse_list,
    run_device,
    secret_values,
)


def call(
    agent: str = "fence_x",
    action: str = "off",
    target: str | None = "node1",
    port: str | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> DeviceCall:
    return DeviceCall("dev1", agent, action, target, port, params or {}, timeout)


def script(tmp_path: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(mode)
    return path


def run(c: DeviceCall, paths: FencePaths | None = None) -> DeviceResult:
    if paths is None:
        return asyncio.run(run_device(c))
    return asyncio.run(run_device(c, paths=paths))


def gone(pid: int) -> bool:
    """The process is gone or a zombie nobody reaped yet (it runs nothing either way)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


# ---- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        ("fence_dummy", "fence-agent"),
        ("fence_ipmilan", "fence-agent"),
        ("null", "glue"),
        ("meatware", "glue"),
        ("ipmilan", "glue"),
        ("external/ssh", "glue"),
        ("hastack/external", "external"),
        ("hastack/manual", "manual"),
        ("hastack/watchdog", "watchdog"),
        ("hastack/ssh", "ssh"),
        ("hastack/ipmi", "ipmi"),
    ],
)
def test_device_kind_by_name(agent: str, kind: str) -> None:
    assert device_kind(agent) == kind


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        ("", "empty"),
        ("hastack/bogus", "unknown hastack device"),
        ("/usr/sbin/fence_dummy", "not a device type"),
        ("fence_a/b", "not a fence agent's file name"),
        ("fence_../x", "not a fence agent's file name"),
        ("external/../../bin/sh", "not a device type"),
        ("external/", "not a device type"),
        ("other/ssh", "not a device type"),
        ("null plugin", "not a device type"),
        ("../null", "not a device type"),
    ],
)
def test_device_kind_refuses_names_no_runner_takes(agent: str, words: str) -> None:
    with pytest.raises(ValueError, match="agent") as info:
        device_kind(agent)
    assert words in str(info.value)
    assert "allowed" in str(info.value)


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (call(action="poweroff"), "action", "allowed: off, on, reboot"),
        (call(action="off", target=None), "target", "needs the node"),
        (call(timeout=0), "timeout", "> 0"),
        (call(timeout=float("nan")), "timeout", "finite"),
        (call(timeout=True), "timeout", "seconds"),
        (call(params={"ipaddr": "a\naction=on"}), "params", "newline"),
        (call(params={"ipaddr": "a\rb"}), "params", "newline"),
        (call(params={"ipaddr": "a\x00b"}), "params", "NUL"),
        (call(params={"bad name": "x"}), "params", "not allowed"),
        (call(params={"a=b": "x"}), "params", "not allowed"),
        (call(params={"": "x"}), "params", "not allowed"),
        (call(params={"action": "on"}), "params", "set by the fencer"),
        (call(target="node1\nplug=x"), "target", "newline"),
        (call(target=""), "target", "non-empty"),
        (call(target="-rf"), "target", "option"),
        (call(port="p\n"), "port", "newline"),
        (call(agent="null", port="a=b"), "port", "'='"),
        (call(agent="hastack/external"), "params", "needs 'script'"),
        (call(agent="hastack/external", params={"script": "bin/x"}), "params", "absolute"),
    ],
)
def test_check_call_names_the_field(bad: DeviceCall, field: str, words: str) -> None:
    with pytest.raises(ValueError) as info:
        check_call(bad)
    message = str(info.value)
    assert message.startswith(f"{field}:"), message
    assert words in message, message


def test_params_that_are_not_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="params: ipport must be a string"):
        check_call(call(params={"ipport": 623}))  # type: ignore[dict-item]


def test_device_wide_actions_ignore_target_and_port() -> None:
    # The fencer passes the port of the node it asks about with a list; list has no target.
    assert check_call(call(action="list", target=None, port="plug\nx")) == "fence-agent"
    assert fence_agent_stdin(call(action="list", target=None, port="p3"), "plug") == (
        b"action=list\n"
    )


def test_bad_input_raises_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script(tmp_path, "fence_marker", f"#!/bin/sh\ntouch {marker}\n")
    paths = FencePaths(fence_dirs=(str(tmp_path),))
    with pytest.raises(ValueError, match="params: ipaddr contains a newline"):
        run(call("fence_marker", params={"ipaddr": "x\nport=y"}), paths)
    assert not marker.exists()


def test_manual_and_watchdog_run_no_process() -> None:
    for agent in ("hastack/manual", "hastack/watchdog"):
        with pytest.raises(ValueError, match="runs no process"):
            run(call(agent))


# ---- building the invocation -----------------------------------------------------------------


def test_fence_agent_stdin_with_plug() -> None:
    data = fence_agent_stdin(call(params={"ip": "10.0.0.9", "username": "admin"}), "plug")
    assert data.decode().splitlines() == [
        "ip=10.0.0.9",
        "username=admin",
        "action=off",
        "plug=node1",
        "nodename=node1",
    ]


def test_fence_agent_stdin_port_for_older_agents_and_mapped_port() -> None:
    data = fence_agent_stdin(call(action="reboot", port="outlet-4"), "port")
    assert data.decode().splitlines() == ["action=reboot", "port=outlet-4", "nodename=node1"]


def test_fence_agent_without_port_parameter_gets_no_plug() -> None:
    data = fence_agent_stdin(call(action="status", params={"status_file": "/tmp/s"}), None)
    assert data.decode().splitlines() == ["status_file=/tmp/s", "action=status", "nodename=node1"]


def test_a_plug_the_device_configures_is_left_alone() -> None:
    lines = fence_agent_stdin(call(params={"plug": "7"}), "plug").decode().splitlines()
    assert lines == ["plug=7", "action=off", "nodename=node1"]


def test_glue_argv_per_action() -> None:
    assert glue_argv(call("null", "reboot")) == [
        "/usr/sbin/stonith",
        *("-t", "null", "-E", "-T", "reset", "--", "node1"),
    ]
    assert glue_argv(call("null", "off", port="n-1"))[-4:] == ["-T", "off", "--", "n-1"]
    assert glue_argv(call("null", "on"))[-4:] == ["-T", "on", "--", "node1"]
    assert glue_argv(call("null", "status"))[-2:] == ["-S", "-l"]
    assert glue_argv(call("null", "status", target=None))[-2:] == ["-E", "-S"]
    assert glue_argv(call("null", "monitor", target=None))[-2:] == ["-E", "-S"]
    assert glue_argv(call("null", "list", target=None))[-2:] == ["-E", "-l"]
    assert glue_argv(call("external/ssh", "metadata", target=None)) == [
        "/usr/sbin/stonith",
        *("-t", "external/ssh", "-m"),
    ]
    paths = FencePaths(stonith_command="/opt/glue/stonith")
    assert glue_argv(call("null", "list", target=None), paths)[0] == "/opt/glue/stonith"


def test_glue_parameters_go_in_the_environment_not_argv() -> None:
    c = call("ipmilan", params={"hostname": "n1", "password": "s3cret"})
    assert not any("s3cret" in arg for arg in glue_argv(c))
    env = glue_env(c, base={"PATH": "/usr/bin"})
    assert env["password"] == "s3cret"
    assert env["hostname"] == "n1"
    assert env["PATH"] == "/usr/bin"
    assert env["HA_logfile"] == "/dev/stderr"


def test_external_invocation() -> None:
    c = call(
        "hastack/external",
        "off",
        port="vm-node1",
        params={"script": "/usr/local/bin/fence-it", "host": "pdu1", "PATH": "/x"},
    )
    argv, env = external_invocation(c, base={"HOME": "/root", "PATH": "/usr/bin"})
    assert argv == ["/usr/local/bin/fence-it", "off", "vm-node1"]
    assert env["host"] == "pdu1"
    assert env["PATH"] == "/x"  # exported as is, as glue's external plugins get them
    assert env["HOME"] == "/root"
    assert "script" not in env
    assert env["HASTACK_FENCE_ACTION"] == "off"
    assert env["HASTACK_FENCE_TARGET"] == "node1"
    assert env["HASTACK_FENCE_PORT"] == "vm-node1"
    argv, env = external_invocation(
        call("hastack/external", "monitor", target=None, params={"script": "/s"}), base={}
    )
    assert argv == ["/s", "monitor"]
    assert env["HASTACK_FENCE_TARGET"] == ""


# ---- interpreting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "action", "rc", "ok", "power"),
    [
        ("fence-agent", "off", 0, True, None),
        ("fence-agent", "off", 1, False, None),
        ("fence-agent", "reboot", 2, False, None),
        ("fence-agent", "on", 0, True, None),
        ("fence-agent", "status", 0, True, "on"),
        ("fence-agent", "status", 2, True, "off"),
        ("fence-agent", "status", 1, False, None),
        ("fence-agent", "status", 8, False, None),
        ("fence-agent", "monitor", 0, True, None),
        ("fence-agent", "monitor", 1, False, None),
        ("external", "status", 2, True, "off"),
        ("external", "off", 3, False, None),
        ("glue", "reboot", 0, True, None),
        ("glue", "reboot", 5, False, None),
        ("glue", "off", 7, True, None),  # S_ISOFF: the node is off, which is what was asked
        ("glue", "on", 7, False, None),
        ("glue", "monitor", 0, True, None),
        ("glue", "monitor", 2, False, None),
    ],
)
def test_exit_codes(kind: str, action: str, rc: int, ok: bool, power: str | None) -> None:
    agent = {"fence-agent": "fence_x", "external": "hastack/external", "glue": "null"}[kind]
    target = None if action == "monitor" else "node1"
    c = call(agent, action, target, params={"script": "/s"} if kind == "external" else None)
    got = interpret(kind, c, rc, "", "some line\nthe last line\n")  # type: ignore[arg-type]
    assert (got[0], got[1]) == (ok, power)
    if not ok:
        assert got[3].startswith(f"exit {rc}")
        assert got[3].endswith("the last line")


def test_glue_reason_names_the_code() -> None:
    got = interpret("glue", call("null", "reboot"), 5, "", "")
    assert got[3] == "exit 5 (S_RESETFAIL: the action failed), no output"


def test_glue_status_checks_the_device_lists_the_node() -> None:
    ok = interpret("glue", call("null", "status", "Node1"), 0, "node1\nnode2\n", "")
    assert ok == (True, None, None, "")  # glue cannot tell a node's power
    missing = interpret("glue", call("null", "status", "node3"), 0, "node1\nnode2\n", "")
    assert missing[0] is False
    assert missing[3] == "the device does not list node3 (it lists: node1, node2)"
    broken = interpret("glue", call("null", "status", "node1"), 2, "", "")
    assert broken[0] is False and "S_ACCESS" in broken[3]


def test_list_output() -> None:
    got = interpret("fence-agent", call(action="list", target=None), 0, "1,web1\n2,db\n\n", "")
    assert got == (True, None, ("1", "2"), "")
    assert parse_list("vm1\nvm2 \nvm1\n") == (("vm1", "vm2"), "")
    assert parse_list("") == ((), "")
    names, why = parse_list("N/A\n")
    assert names is None and "cannot list" in why
    names, why = parse_list("NOTICE: List option is not working on this device yet\n")
    assert names is None and "NOTICE" in why


def test_metadata_output_must_parse() -> None:
    good = interpret("fence-agent", call(action="metadata", target=None), 0, FENCE_XML, "")
    assert good[0] is True
    bad = interpret("fence-agent", call(action="metadata", target=None), 0, "usage: ...", "")
    assert bad[0] is False and "not well-formed XML" in bad[3]


def test_last_line_drops_log_timestamps_and_boilerplate() -> None:
    out = (
        "2026-12-06 05:17:12,946 ERROR: Failed: Unrecognised action 'list'\n\n"
        "2026-12-06 05:17:12,947 ERROR: Please use '-h' for usage\n\n"
    )
    assert last_line(out) == "ERROR: Failed: Unrecognised action 'list'"
    glue = "Dec 06 05:19:48 vm stonith: [1555]: CRIT: 'ssh off' for host n1 failed with rc 1\n"
    assert last_line(glue) == "CRIT: 'ssh off' for host n1 failed with rc 1"
    assert last_line("") == ""
    assert len(last_line("x" * 10_000)) <= 300


def test_secrets_are_masked() -> None:
    params = {"passwd": "hunter22", "password": "pw", "login": "admin", "snmp_community": "pub1"}
    secrets = secret_values(params)
    assert secrets == ["hunter22", "pub1", "pw"]
    text = "login admin password hunter22 community pub1 pw=pw pwd stays"
    assert mask_secrets(text, secrets) == "login admin password *** community *** ***=*** pwd stays"


# ---- metadata --------------------------------------------------------------------------------

# Written for these tests in the shape fence-agents print (not copied from an agent).
FENCE_XML = """<?xml version="1.0" ?>
<resource-agent name="fence_test" shortdesc="A test agent" >
<longdesc>Fences
  test nodes.</longdesc>
<parameters>
  <parameter name="action" unique="0" required="1">
    <getopt mixed="-o, --action=[action]" />
    <content type="string" default="reboot"  />
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="ip" unique="0" required="1" obsoletes="ipaddr">
    <content type="string"  />
    <shortdesc lang="en">IP address</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="0" obsoletes="port">
    <content type="string"  />
    <shortdesc lang="de">Stecker</shortdesc>
    <shortdesc lang="en">Plug</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0" deprecated="1">
    <content type="string"  />
  </parameter>
  <parameter name="method" unique="0" required="0">
    <content type="select" default="onoff"  >
      <option value="onoff" />
      <option value="cycle" />
    </content>
  </parameter>
  <parameter name="ip" unique="0" required="0"><content type="integer"/></parameter>
</parameters>
<actions>
  <action name="on" automatic="0"/>
  <action name="off" />
  <action name="reboot" />
  <action name="status" />
  <action name="list" />
  <action name="monitor" />
  <action name="metadata" />
</actions>
</resource-agent>
"""

GLUE_XML = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="testplug">
<version>1.0</version>
<longdesc lang="en">
A test plugin
</longdesc>
<shortdesc lang="en">Test plugin</shortdesc>
<parameters><parameter name="hostlist" unique="0" required="1"><content type="string" />
<shortdesc lang="en">
Hostlist</shortdesc>
</parameter></parameters>
<actions><action name="start" timeout="20" /><action name="monitor" timeout="20" /></actions>
</resource-agent>
"""


def test_parse_fence_agent_metadata() -> None:
    meta = parse_agent_metadata(FENCE_XML, "fence_test")
    assert meta.shortdesc == "A test agent"
    assert meta.longdesc == "Fences test nodes."
    assert [p.name for p in meta.parameters] == ["action", "ip", "plug", "port", "method"]
    ip = meta.parameter("ip")
    assert ip is not None and ip.required and ip.type == "string"  # the first "ip" counts
    assert ip.obsoletes == "ipaddr"
    plug = meta.parameter("plug")
    assert plug is not None and plug.shortdesc == "Plug"
    port = meta.parameter("port")
    assert port is not None and port.deprecated
    method = meta.parameter("method")
    assert method is not None and method.options == ("onoff", "cycle")
    assert method.default == "onoff"
    assert meta.actions == ("on", "off", "reboot", "status", "list", "monitor", "metadata")
    assert meta.port_parameter() == "plug"
    assert meta.supports("list") and not meta.supports("diag")


def test_port_parameter_of_older_agents_and_of_agents_without_one() -> None:
    older = FENCE_XML.replace('name="plug"', 'name="socket"')
    assert parse_agent_metadata(older, "fence_old").port_parameter() == "port"
    none = older.replace('name="port"', 'name="outlet"')
    assert parse_agent_metadata(none, "fence_single").port_parameter() is None


def test_parse_glue_metadata() -> None:
    meta = parse_agent_metadata(GLUE_XML.encode(), "testplug", "glue")
    assert meta.source == "glue"
    assert meta.shortdesc == "Test plugin"
    assert meta.parameters[0].name == "hostlist" and meta.parameters[0].required
    assert meta.parameters[0].shortdesc == "Hostlist"
    assert meta.actions == FENCE_ACTIONS  # what stonith can carry, not the OCF actions


def test_glue_confignames() -> None:
    assert parse_glue_confignames("hostname  ipaddr  port  \n", "ipmilan") == (
        "hostname",
        "ipaddr",
        "port",
    )
    assert parse_glue_confignames("\n", "suicide") == ()
    with pytest.raises(MetadataError, match="not a parameter name"):
        parse_glue_confignames("usage: stonith ...", "x")
    meta = glue_metadata_from_names("ipmilan", ("hostname", "ipaddr"))
    assert [p.required for p in meta.parameters] == [True, True]


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("usage: fence_x [options]", "not well-formed XML"),
        ("<resource-agent><parameters>", "line 1: not well-formed"),
        ("<html/>", "root element is <html>"),
        ("<resource-agent><parameters><parameter/></parameters></resource-agent>", "without a"),
        (
            '<resource-agent><parameters><parameter name="a b"/></parameters></resource-agent>',
            "cannot be passed",
        ),
        ("<resource-agent><actions><action/></actions></resource-agent>", "without a name"),
        ('<?xml version="1.0" encoding="nonesuch"?><resource-agent/>', "metadata"),
        ("x" * (1024 * 1024 + 1), "more than"),
    ],
)
def test_bad_metadata_is_a_clear_error(xml: str, words: str) -> None:
    with pytest.raises(MetadataError) as info:
        parse_agent_metadata(xml, "fence_bad")
    assert str(info.value).startswith("fence_bad")
    assert words in str(info.value)


def test_entity_definitions_are_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<resource-agent shortdesc="&b;"/>'
    )
    with pytest.raises(MetadataError, match="fence_bomb metadata: defines XML entities"):
        parse_agent_metadata(bomb, "fence_bomb")


def test_builtin_metadata() -> None:
    external = builtin_metadata("external")
    assert external.parameter("script") is not None
    assert builtin_metadata("manual").parameters == ()
    with pytest.raises(MetadataError, match="no built-in metadata"):
        builtin_metadata("ssh")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_fuzz_metadata_parser_never_tracebacks(data: bytes | str) -> None:
    try:
        meta = parse_agent_metadata(data, "fence_fuzz")
    except MetadataError as exc:
        assert str(exc).startswith("fence_fuzz")
        return
    assert isinstance(meta, DeviceMetadata)


_NAMES = st.sampled_from(
    ["parameter", "parameters", "content", "option", "action", "actions", "shortdesc", "x"]
)
_ATTRS = st.dictionaries(
    st.sampled_from(["name", "required", "type", "default", "value", "lang", "obsoletes"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    max_size=3,
)


@st.composite
def _elements(draw: st.DrawFn, depth: int = 0) -> str:
    from xml.sax.saxutils import quoteattr

    tag = draw(_NAMES)
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in draw(_ATTRS).items())
    children = (
        ""
        if depth > 2
        else "".join(
            draw(st.lists(_elements(depth + 1), max_size=3))  # type: ignore[call-arg]
        )
    )
    return f"<{tag}{attrs}>{children}</{tag}>"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_elements(), max_size=4))  # type: ignore[call-arg]
def test_fuzz_structured_metadata(children: list[str]) -> None:
    xml = f"<resource-agent>{''.join(children)}</resource-agent>"
    for source in ("fence-agent", "glue"):
        try:
            meta = parse_agent_metadata(xml, "fence_fuzz", source)  # type: ignore[arg-type]
        except MetadataError as exc:
            assert str(exc).startswith("fence_fuzz")
            continue
        assert all(p.name for p in meta.parameters)
        assert len({p.name for p in meta.parameters}) == len(meta.parameters)


# ---- the subprocess, with small scripts ------------------------------------------------------

# A fence agent that reports its metadata (with or without a plug) and records its stdin.
FAKE_AGENT = """#!/bin/sh
input=$(cat)
case "$input" in
  *action=metadata*)
    echo '<resource-agent name="fence_fake"><parameters>'
    [ -n "$PLUG" ] && echo '<parameter name="'$PLUG'"><content type="string"/></parameter>'
    echo '</parameters><actions><action name="off"/></actions></resource-agent>'
    exit 0;;
esac
printf '%s\\n' "$input" > "$RECORD"
case "$input" in
  *action=list*) echo "p1,web"; echo "p2,db"; exit 0;;
  *action=status*) echo "Status: OFF"; exit 2;;
  *action=on*) echo "ERROR: cannot log in with password hunter22" >&2; exit 3;;
esac
exit 0
"""


def fake_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plug: str) -> FencePaths:
    name = f"fence_fake{plug or 'none'}"  # one name per metadata, cached by file
    script(tmp_path, name, FAKE_AGENT)
    monkeypatch.setenv("PLUG", plug)
    monkeypatch.setenv("RECORD", str(tmp_path / "stdin"))
    return FencePaths(fence_dirs=(str(tmp_path / "missing"), str(tmp_path)))


@pytest.mark.parametrize("plug", ["plug", "port", ""])
def test_fence_agent_gets_the_plug_its_metadata_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plug: str
) -> None:
    paths = fake_agent(tmp_path, monkeypatch, plug)
    result = run(call(f"fence_fake{plug or 'none'}", "off", port="outlet3"), paths)
    assert result.ok and result.rc == 0
    lines = (tmp_path / "stdin").read_text().splitlines()
    expected = ["action=off"] + ([f"{plug}=outlet3"] if plug else []) + ["nodename=node1"]
    assert lines == expected


def test_fence_agent_status_list_and_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = fake_agent(tmp_path, monkeypatch, "plug")
    status = run(call("fence_fakeplug", "status"), paths)
    assert (status.ok, status.power, status.rc) == (True, "off", 2)
    listed = run(call("fence_fakeplug", "list", target=None), paths)
    assert listed.ok and listed.targets == ("p1", "p2")
    on = run(call("fence_fakeplug", "on", params={"passwd": "hunter22"}), paths)
    assert not on.ok and on.rc == 3
    assert on.reason == "exit 3: ERROR: cannot log in with password ***"
    assert "hunter22" not in on.output and "***" in on.output


def test_fence_agent_not_found_and_not_executable(tmp_path: Path) -> None:
    paths = FencePaths(fence_dirs=(str(tmp_path), str(tmp_path / "other")))
    missing = run(call("fence_nosuch"), paths)
    assert (missing.ok, missing.rc) == (False, None)
    assert missing.reason == f"fence_nosuch not found in {tmp_path}, {tmp_path}/other " + (
        "(is fence-agents installed?)"
    )
    script(tmp_path, "fence_noexec", "#!/bin/sh\nexit 0\n", mode=0o644)
    noexec = run(call("fence_noexec"), paths)
    assert not noexec.ok and noexec.reason == f"{tmp_path}/fence_noexec is not executable"


def test_missing_interpreter_is_a_result(tmp_path: Path) -> None:
    path = script(tmp_path, "bad.sh", "#!/nonexistent/interpreter\n")
    result = run(call("hastack/external", params={"script": str(path)}))
    assert (result.ok, result.rc) == (False, None)
    assert "interpreter" in result.reason


def test_missing_stonith_command_is_a_result(tmp_path: Path) -> None:
    paths = FencePaths(stonith_command=str(tmp_path / "stonith"))
    result = run(call("null", params={"hostlist": "node1"}), paths)
    assert not result.ok and "not found" in result.reason and "cluster-glue" in result.reason


def test_external_gets_action_port_and_environment(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "dev.sh",
        '#!/bin/sh\necho "$1 $2 $HASTACK_FENCE_ACTION $HASTACK_FENCE_TARGET $pdu"\n'
        '[ "$1" = status ] && exit 2\nexit 0\n',
    )
    params = {"script": str(path), "pdu": "pdu-7"}
    off = run(call("hastack/external", "off", port="vm1", params=params))
    assert off.ok and off.output == "off vm1 off node1 pdu-7\n"
    status = run(call("hastack/external", "status", params=params))
    assert (status.ok, status.power) == (True, "off")


def test_killed_by_a_signal(tmp_path: Path) -> None:
    path = script(tmp_path, "die.sh", "#!/bin/sh\necho going\nkill -KILL $$\n")
    result = run(call("hastack/external", params={"script": str(path)}))
    assert (result.ok, result.rc) == (False, None)
    assert result.reason == "killed by SIGKILL: going"


def test_output_keeps_the_tail(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "loud.sh",
        "#!/bin/sh\ni=0\nwhile [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done\n"
        "echo the end >&2\nexit 1\n",
    )
    result = run(call("hastack/external", params={"script": str(path)}))
    assert len(result.output.encode()) <= OUTPUT_TAIL
    assert result.output.endswith("the end\n")
    assert result.output.startswith("line ")  # the cut line was dropped whole
    assert result.reason == "exit 1: the end"


def test_a_child_left_behind_is_killed_when_the_agent_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    path = script(tmp_path, "leave.sh", f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\nexit 0\n")
    started = time.monotonic()
    result = run(call("hastack/external", params={"script": str(path)}))
    assert result.ok
    assert time.monotonic() - started < 5  # not waiting for the child's open pipe
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def test_cancelling_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    path = script(tmp_path, "slow.sh", f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 300\n")

    async def body() -> None:
        task = asyncio.create_task(
            run_device(call("hastack/external", params={"script": str(path)}, timeout=60))
        )
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(body(), 20))
    assert gone(int(pidfile.read_text()))


# ---- ssh and ipmi go to hastack.fencing.ssh_ipmi ---------------------------------------------


def test_ssh_without_its_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hastack.fencing.ssh_ipmi", None)
    with pytest.raises(FenceRunnerError, match=r"hastack\.fencing\.ssh_ipmi.*missing"):
        run(call("hastack/ssh"))


def test_ssh_and_ipmi_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, DeviceCall]] = []

    def runner(kind: str):  # type: ignore[no-untyped-def]
        async def run_kind(c: DeviceCall) -> DeviceResult:
            seen.append((kind, c))
            return DeviceResult(True, None, None, 0, "", kind, 0.0)

        return run_kind

    module = types.ModuleType("hastack.fencing.ssh_ipmi")
    module.run_ssh = runner("ssh")  # type: ignore[attr-defined]
    module.run_ipmi = runner("ipmi")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hastack.fencing.ssh_ipmi", module)
    assert run(call("hastack/ssh")).output == "ssh"
    assert run(call("hastack/ipmi", "reboot")).output == "ipmi"
    assert [(k, c.action) for k, c in seen] == [("ssh", "off"), ("ipmi", "reboot")]
    with pytest.raises(ValueError, match="action"):
        run(call("hastack/ssh", "explode"))  # validated before dispatch
    assert len(seen) == 2


def test_metadata_of_own_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert asyncio.run(agent_metadata("hastack/external")).parameter("script") is not None
    monkeypatch.setitem(sys.modules, "hastack.fencing.ssh_ipmi", None)
    with pytest.raises(FenceRunnerError):
        asyncio.run(agent_metadata("hastack/ipmi"))
    with pytest.raises(ValueError, match="agent"):
        asyncio.run(agent_metadata("/bin/sh"))


def test_fence_agent_metadata_failure_is_a_metadata_error(tmp_path: Path) -> None:
    script(tmp_path, "fence_broken", "#!/bin/sh\necho 'Traceback: boom' >&2\nexit 1\n")
    paths = FencePaths(fence_dirs=(str(tmp_path),))
    with pytest.raises(MetadataError, match="fence_broken: metadata failed: exit 1: Traceback"):
        asyncio.run(agent_metadata("fence_broken", paths=paths))
    with pytest.raises(MetadataError, match="not found"):
        asyncio.run(agent_metadata("fence_absent", paths=paths))


def test_environment_is_inherited_by_fence_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fence-agents are Python programs that need PATH, LANG and friends as the daemon has them.
    monkeypatch.setenv("HASTACK_TEST_MARK", "kept")
    script(tmp_path, "fence_env", '#!/bin/sh\ncat >/dev/null\necho "$HASTACK_TEST_MARK"\n')
    result = run(call("fence_env", "monitor", None), FencePaths(fence_dirs=(str(tmp_path),)))
    assert result.ok and result.output == "kept\n"
    assert os.environ["HASTACK_TEST_MARK"] == "kept"


def test_metadata_is_read_once_per_agent_file(tmp_path: Path) -> None:
    # The plug discovery must not double every fence's latency: metadata once per file
    # version, again when the file changes (an upgraded agent).
    count = tmp_path / "count"
    body = (
        "#!/bin/sh\ninput=$(cat)\n"
        'case "$input" in *action=metadata*)\n'
        f"  echo x >> {count}\n"
        '  echo \'<resource-agent><parameters><parameter name="plug"/></parameters>'
        "</resource-agent>';;\nesac\nexit 0\n"
    )
    agent = script(tmp_path, "fence_counted", body)
    paths = FencePaths(fence_dirs=(str(tmp_path),))
    for _ in range(3):
        assert run(call("fence_counted", "off"), paths).ok
    assert count.read_text().count("x") == 1
    agent.write_text(body + "# upgraded\n")
    assert run(call("fence_counted", "off"), paths).ok
    assert count.read_text().count("x") == 2


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_output_readers_never_raise(text: str) -> None:
    names, why = parse_list(text)
    assert (names is None) == bool(why)
    assert "\n" not in last_line(text)
    try:
        parse_glue_confignames(text, "fuzz")
    except MetadataError as exc:
        assert str(exc).startswith("fuzz:")
