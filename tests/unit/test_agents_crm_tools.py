"""crm_attribute and crm_master for agents: the command-line translation (pure), the CIB_file
and daemon paths, the scripts the daemon writes, and the real executor running a real agent
that calls them against a real control socket."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hastack.agents.cluster_tools import ClusterTools, install, script_text
from hastack.agents.crm_tools import (
    ENV_CONTROL,
    ENV_NODE,
    EXIT_ERROR,
    EXIT_NOSUCH,
    EXIT_NOT_CONNECTED,
    EXIT_UNIMPLEMENTED,
    EXIT_USAGE,
    AttributeCommand,
    ToolError,
    crm_master_argv,
    parse_crm_attribute,
    run,
)
from hastack.agents.invocation import ResourceAgentCall
from hastack.agents.local import LocalExecutor
from hastack.agents.names import AgentPaths, parse_agent
from hastack.agents.rc import OcfRc
from hastack.daemon.control import ControlServer

AGENT_ENV = {"OCF_RESOURCE_INSTANCE": "st", ENV_NODE: "alpha"}


def parse(*argv: str, env: dict[str, str] | None = None) -> AttributeCommand:
    parsed = parse_crm_attribute(argv, AGENT_ENV if env is None else env)
    assert isinstance(parsed, AttributeCommand)
    return parsed


def refused(*argv: str, env: dict[str, str] | None = None) -> ToolError:
    with pytest.raises(ToolError) as info:
        parse_crm_attribute(argv, AGENT_ENV if env is None else env)
    return info.value


# ---- crm_attribute's command line ------------------------------------------------------------


def test_promotion_update_is_a_reboot_attribute_of_this_node_named_master_rsc() -> None:
    cmd = parse("--promotion", "-v", "5")
    assert cmd == AttributeCommand("update", "master-st", "status", "alpha", "5")
    assert cmd.operation() == {
        "op": "node-attribute",
        "node": "alpha",
        "name": "master-st",
        "value": "5",
        "lifetime": "reboot",
    }


def test_promotion_takes_an_optional_resource_and_keeps_a_unique_instance_number() -> None:
    assert parse("-p", "drbd0:1", "-G").name == "master-drbd0:1"
    assert parse("--promotion=web", "-D").name == "master-web"
    assert parse("-p", "-N", "beta", "-G").name == "master-st"  # -N is no resource
    # a later -n renames it, and it stays a reboot attribute (as Pacemaker 2.1.5)
    assert (parse("-p", "-n", "zz", "-v", "1").name, parse("-p", "-n", "zz").scope) == (
        "zz",
        "status",
    )
    # a globally-unique clone instance runs as rsc:N and its score is named so (Pacemaker 2.1)
    assert parse("-p", "-v", "1", env={"OCF_RESOURCE_INSTANCE": "st:2"}).name == "master-st:2"


def test_promotion_outside_an_agent_without_a_resource_is_a_usage_error() -> None:
    error = refused("--promotion", "-v", "5", env={})
    assert error.code == EXIT_USAGE
    assert "must be called from an OCF resource agent" in error.message


def test_promotion_with_lifetime_forever_is_a_permanent_node_attribute() -> None:
    cmd = parse("-p", "-l", "forever", "-v", "3")
    assert (cmd.scope, cmd.lifetime, cmd.node) == ("nodes", "forever", "alpha")


def test_the_section_is_the_last_of_t_and_l_and_defaults_as_pacemaker() -> None:
    assert parse("-n", "x", "-N", "beta", "-G").scope == "nodes"
    assert parse("-n", "x", "-G").scope == "crm_config"
    assert parse("-n", "x", "-l", "reboot", "-G").node == "alpha"  # this node without -N
    assert parse("-n", "x", "-N", "b", "-l", "forever", "-t", "status").scope == "status"
    assert parse("-n", "x", "-N", "b", "-t", "status", "-l", "forever").scope == "nodes"
    assert parse("-n", "x", "-t", "rsc_defaults", "-v", "1").operation() == {
        "op": "rsc-defaults-set",
        "name": "x",
        "value": "1",
    }
    assert parse("-n", "x", "-t", "crm_config", "-D").operation() == {
        "op": "property-delete",
        "name": "x",
    }
    assert parse("-n", "x", "-v", "y").operation()["force"] is True  # any option name


def test_the_last_command_wins_and_query_is_the_default() -> None:
    assert parse("-n", "x", "-N", "b").command == "query"
    assert parse("-n", "x", "-N", "b", "-G", "-v", "3").command == "update"
    assert parse("-n", "x", "-N", "b", "-D", "-G").command == "query"


def test_glib_spellings_clustered_attached_and_long_forms() -> None:
    cmd = parse("-qGn", "x", "-Nbeta", "--lifetime=reboot", "--default", "0")
    assert (cmd.quiet, cmd.command, cmd.name, cmd.node, cmd.scope, cmd.default) == (
        True,
        "query",
        "x",
        "beta",
        "status",
        "0",
    )
    # deprecated spellings agents still use
    cmd = parse("-Q", "-U", "beta", "--attr-value", "9", "-n", "x")
    assert (cmd.quiet, cmd.node, cmd.command, cmd.value) == (True, "beta", "update", "9")


def test_container_resources_name_their_host_as_pacemaker() -> None:
    env = {
        ENV_NODE: "alpha",
        "OCF_RESKEY_CRM_meta_container_attribute_target": "host",
        "OCF_RESKEY_CRM_meta_physical_host": "gamma",
    }
    assert parse("-n", "x", "-l", "reboot", "-v", "1", env=env).node == "gamma"


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (("--bogus",), EXIT_USAGE, "Unknown option --bogus"),
        (("-x",), EXIT_USAGE, "Unknown option -x"),
        (("-v",), EXIT_USAGE, "Missing argument for -v"),
        (("-n", "x", "-l", "sometimes"), EXIT_USAGE, "reboot, forever"),
        (("-n", "x", "-t", "everywhere"), EXIT_USAGE, "crm_config, rsc_defaults"),
        (("-N", "b", "-v", "1"), EXIT_USAGE, "-n NAME"),
        (("-n", "x", "stray"), EXIT_USAGE, "unexpected argument 'stray'"),
        (("-z", "-n", "x", "-N", "b"), EXIT_UNIMPLEMENTED, "-z/--utilization"),
        (("-n", "x", "-t", "tickets", "-G"), EXIT_UNIMPLEMENTED, "tickets"),
    ],
)
def test_bad_command_lines_are_clear_errors_with_pacemakers_codes(
    argv: tuple[str, ...], code: int, text: str
) -> None:
    error = refused(*argv)
    assert error.code == code
    assert text in error.message
    assert error.message.startswith("crm_attribute: ")


def test_help_and_version_are_text_to_print() -> None:
    assert "Usage: crm_attribute" in str(parse_crm_attribute(["--help"], {}))
    assert "hastack" in str(parse_crm_attribute(["-$"], {}))


# ---- crm_master ------------------------------------------------------------------------------


def test_crm_master_runs_crm_attribute_as_pacemakers_script() -> None:
    env = {"OCF_RESOURCE_INSTANCE": "drbd0", ENV_NODE: "alpha"}
    argv = crm_master_argv(["-Q", "-l", "reboot", "-v", "100"], env)
    want = ["-n", "master-drbd0", "--lifetime", "forever", "-Q", "-l", "reboot", "-v", "100"]
    assert argv == want
    cmd = parse_crm_attribute(argv, env)
    assert cmd == AttributeCommand("update", "master-drbd0", "status", "alpha", "100", quiet=True)
    # without -l it is a permanent attribute, as the script's `--lifetime forever`
    cmd = parse_crm_attribute(crm_master_argv(["-v", "3"], env), env)
    assert isinstance(cmd, AttributeCommand) and cmd.scope == "nodes"
    # drbd's query and delete
    query = parse_crm_attribute(crm_master_argv(["-q", "-l", "reboot", "-G"], env), env)
    assert isinstance(query, AttributeCommand)
    assert (query.command, query.quiet, query.scope) == ("query", True, "status")
    delete = parse_crm_attribute(crm_master_argv(["-l", "reboot", "-D"], env), env)
    assert isinstance(delete, AttributeCommand) and delete.command == "delete"
    # -r names the resource; long options as getopt reads them
    assert crm_master_argv(["--resource=web", "--update", "1"], {})[:2] == ["-n", "master-web"]
    assert crm_master_argv(["--help"], {}) == ["--help"]


@pytest.mark.parametrize(
    ("argv", "env", "text"),
    [
        (["-v", "1"], {}, "error: No resource specified"),
        (["-x"], AGENT_ENV, "crm_master: invalid option -- 'x'"),
        (["--bogus"], AGENT_ENV, "crm_master: unrecognized option '--bogus'"),
        (["-v"], AGENT_ENV, "option requires an argument -- 'v'"),
    ],
)
def test_crm_master_usage_errors_exit_1_with_its_usage(
    argv: list[str], env: dict[str, str], text: str
) -> None:
    with pytest.raises(ToolError) as info:
        crm_master_argv(argv, env)
    assert info.value.code == EXIT_ERROR  # the script's exit_usage
    assert text in info.value.message
    assert "Usage: crm_master" in info.value.message


# ---- carrying it out: CIB_file, the daemon ---------------------------------------------------

CIB = b"""<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config/>
    <nodes>
      <node id="1" uname="alpha"/>
      <node id="2" uname="beta"/>
    </nodes>
    <resources/>
    <constraints/>
  </configuration>
  <status>
    <node_state id="1" uname="alpha" in_ccm="true" crmd="online" join="member"/>
  </status>
</cib>
"""


@pytest.fixture
def cib_env(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "cib.xml"
    path.write_bytes(CIB)
    return {**AGENT_ENV, "CIB_file": str(path)}


def transient(path: str, node_id: str = "1") -> dict[str, str]:
    root = etree.parse(path).getroot()
    pairs = root.xpath(f"//node_state[@id='{node_id}']/transient_attributes//nvpair")
    return {p.get("name"): p.get("value") for p in pairs}


def test_with_cib_file_scores_are_set_queried_and_deleted(cib_env: dict[str, str]) -> None:
    assert run("crm_attribute", ["--promotion", "-v", "5"], cib_env) == (0, "", "")
    assert transient(cib_env["CIB_file"]) == {"master-st": "5"}
    assert run("crm_master", ["-l", "reboot", "-v", "100", "-r", "d0"], cib_env)[0] == 0
    assert transient(cib_env["CIB_file"])["master-d0"] == "100"
    assert run("crm_attribute", ["-p", "-G", "-q"], cib_env) == (0, "5\n", "")
    assert run("crm_attribute", ["-p", "-G"], cib_env) == (
        0,
        "scope=status  name=master-st value=5\n",
        "",
    )
    code, out, _ = run("crm_master", ["-l", "reboot", "-D"], cib_env)
    assert (code, out) == (0, "Deleted status attribute: name=master-st\n")
    assert "master-st" not in transient(cib_env["CIB_file"])
    # deleting what is not there is no error, as crm_attribute -D
    assert run("crm_attribute", ["-p", "-D"], cib_env) == (0, "", "")


def test_a_missing_attribute_exits_105_unless_a_default_is_given(cib_env: dict[str, str]) -> None:
    code, out, err = run("crm_attribute", ["-p", "-G", "-q"], cib_env)
    assert (code, out) == (EXIT_NOSUCH, "")
    assert err == "crm_attribute: Error performing operation: No such device or address\n"
    assert run("crm_attribute", ["-p", "-G", "-q", "-d", "0"], cib_env) == (0, "0\n", "")


def test_an_unknown_node_exits_105(cib_env: dict[str, str]) -> None:
    code, _, err = run("crm_attribute", ["-N", "gamma", "-n", "x", "-v", "1"], cib_env)
    assert code == EXIT_NOSUCH and "gamma" in err
    # beta is configured but the cluster never saw it: no reboot attribute for it
    code, _, err = run(
        "crm_attribute", ["-N", "beta", "-n", "x", "-l", "reboot", "-v", "1"], cib_env
    )
    assert code == EXIT_NOSUCH and "status section" in err


def test_without_a_daemon_or_cib_file_it_says_so_and_exits_102(tmp_path: Path) -> None:
    code, _, err = run("crm_attribute", ["-p", "-v", "5"], AGENT_ENV)
    assert code == EXIT_NOT_CONNECTED and "Could not connect to the CIB" in err
    gone = {**AGENT_ENV, ENV_CONTROL: str(tmp_path / "none.sock")}
    code, _, err = run("crm_attribute", ["-p", "-v", "5"], gone)
    assert code == EXIT_NOT_CONNECTED and "node daemon is not running" in err
    code, _, err = run("crm_attribute", ["-p", "-G"], gone)
    assert code == EXIT_NOT_CONNECTED and "node daemon is not running" in err


# ---- the scripts the daemon writes -----------------------------------------------------------


def test_install_writes_executable_scripts_and_links_pacemakers_other_tools(
    tmp_path: Path,
) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / "attrd_updater").write_text("#!/bin/sh\necho real attrd_updater\n")
    (sbin / "attrd_updater").chmod(0o755)
    directory = tmp_path / "bin"
    assert install(directory, sbin=str(sbin)) == []
    for tool in ("crm_attribute", "crm_master"):
        mode = (directory / tool).stat().st_mode
        assert stat.S_IMODE(mode) == 0o755
        assert (directory / tool).read_text() == script_text(tool)
    assert (directory / "attrd_updater").resolve() == (sbin / "attrd_updater").resolve()
    assert not (directory / "crm_node").exists()  # not in sbin: not linked
    install(directory, sbin=str(sbin))  # a restart rewrites them in place
    assert (directory / "attrd_updater").is_symlink()


def test_the_script_runs_this_hastack_whatever_the_agents_python_environment(
    tmp_path: Path, cib_env: dict[str, str]
) -> None:
    directory = tmp_path / "bin"
    install(directory, sbin=str(tmp_path))
    bogus = tmp_path / "bogus"
    (bogus / "hastack").mkdir(parents=True)
    (bogus / "hastack" / "__init__.py").write_text("raise SystemExit('the wrong hastack')\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(bogus),  # ignored: the script runs Python isolated
        "PYTHONHOME": str(bogus),
        **cib_env,
    }
    out = subprocess.run(
        [str(directory / "crm_master"), "-l", "reboot", "-v", "77"],
        env=env,
        cwd=bogus,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert transient(cib_env["CIB_file"]) == {"master-st": "77"}
    out = subprocess.run(
        [str(directory / "crm_attribute"), "--bogus"], env=env, capture_output=True, text=True
    )
    assert (out.returncode, out.stderr) == (EXIT_USAGE, "crm_attribute: Unknown option --bogus\n")


def test_cluster_tools_come_first_on_path_and_as_ha_sbin_dir(tmp_path: Path) -> None:
    tools = ClusterTools(tmp_path / "bin", tmp_path / "control.sock", "alpha", "/etc/ha.d")
    env = tools.apply({"PATH": f"/usr/sbin:/usr/bin:{tmp_path / 'bin'}", "HA_SBIN_DIR": "/x"})
    assert env["PATH"] == f"{tmp_path / 'bin'}:/usr/sbin:/usr/bin"
    assert env["HA_SBIN_DIR"] == str(tmp_path / "bin")
    assert env[ENV_CONTROL] == str(tmp_path / "control.sock")
    assert env[ENV_NODE] == "alpha"
    assert env["HASTACK_CONFIG_DIR"] == "/etc/ha.d"


# ---- the real executor runs a real agent that calls them --------------------------------------

AGENT = """#!/bin/sh
# a promotable agent as Pacemaker's Stateful and ocf:linbit:drbd call the tools
case "$1" in
  start)
    "${HA_SBIN_DIR}/crm_attribute" --promotion -v 42 || exit 1
    crm_master -Q -l reboot -v 7 -r other || exit 1
    command -v crm_attribute > "$OCF_RESKEY_found"
    exit 0 ;;
  monitor)
    [ "$(crm_attribute -p -G -q)" = 42 ] && exit 0
    exit 1 ;;
  stop)
    crm_attribute --promotion -D; exit 0 ;;
  *) exit 3 ;;
esac
"""


def test_the_executor_gives_agents_crm_attribute_and_crm_master_for_this_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ocf_root = tmp_path / "ocf"
    (ocf_root / "resource.d" / "test").mkdir(parents=True)
    script = ocf_root / "resource.d" / "test" / "Scored"
    script.write_text(AGENT)
    script.chmod(0o755)
    bin_dir = tmp_path / "bin"
    install(bin_dir, sbin=str(tmp_path))
    socket_path = tmp_path / "control.sock"
    tools = ClusterTools(bin_dir, socket_path, "alpha", str(tmp_path))
    applied: list[dict[str, Any]] = []
    scores: dict[str, str] = {}

    def cib_apply(request: dict[str, Any]) -> dict[str, Any]:
        op = request["operation"]
        applied.append(op)
        if op["value"] is None:
            scores.pop(op["name"], None)
        else:
            scores[op["name"]] = op["value"]
        return {"ok": True, "summary": f"set {op['name']}"}

    def cib_query(_request: dict[str, Any]) -> dict[str, Any]:
        pairs = "".join(
            f'<nvpair id="status-1-{n}" name="{n}" value="{v}"/>' for n, v in scores.items()
        )
        cib = CIB.decode().replace(
            'join="member"/>',
            f'join="member"><transient_attributes id="1"><instance_attributes id="status-1">'
            f"{pairs}</instance_attributes></transient_attributes></node_state>",
        )
        return {"cib": cib, "node": "alpha", "dc": "alpha"}

    async def scenario() -> list[int]:
        server = ControlServer(socket_path, {"cib-apply": cib_apply, "cib-query": cib_query})
        await server.start()
        try:
            async with LocalExecutor(
                "alpha", paths=AgentPaths(ocf_root=ocf_root), cluster_tools=tools
            ) as executor:
                rcs = []
                for action in ("start", "monitor", "stop"):
                    call = ResourceAgentCall(
                        "st",
                        parse_agent("ocf:test:Scored"),
                        action,
                        params={"found": str(tmp_path / "found")},
                        timeout=60.0,
                    )
                    rcs.append((await executor.submit(call)).rc)
                return rcs
        finally:
            await server.close()

    monkeypatch.delenv("CIB_file", raising=False)  # the agents inherit the environment
    assert asyncio.run(scenario()) == [OcfRc.SUCCESS, OcfRc.SUCCESS, OcfRc.SUCCESS]
    assert (tmp_path / "found").read_text().strip() == str(bin_dir / "crm_attribute")
    reboot = {"node": "alpha", "lifetime": "reboot", "op": "node-attribute"}
    assert applied == [
        {**reboot, "name": "master-st", "value": "42"},
        {**reboot, "name": "master-other", "value": "7"},
        {**reboot, "name": "master-st", "value": None},
    ]
