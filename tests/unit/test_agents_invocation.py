"""How agents are called: argv and environment per standard, exit-code mapping, and real runs
of Debian's ocf:heartbeat:Dummy, heartbeat's R1 IPaddr2 status and LSB scripts from tmp_path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hastack.agents.invocation import (
    Invocation,
    ResourceAgentCall,
    build_invocation,
    interpret,
    sane_path,
    systemd_unit,
)
from hastack.agents.names import AgentError, AgentPaths, parse_agent
from hastack.agents.rc import OcfRc

BASE_ENV = {"PATH": "/opt/tool/bin:/usr/bin", "HOME": "/root", "OCF_RESKEY_leaked": "x"}
DEBIAN_DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
R1_IPADDR2 = Path("/etc/ha.d/resource.d/IPaddr2")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths(
        ocf_root=tmp_path / "ocf",
        init_d=tmp_path / "init.d",
        ha_resource_d=tmp_path / "resource.d",
        systemd_run=tmp_path / "run-systemd",
        systemd_unit_dirs=(),
    )


def _call(agent: str, action: str, **kwargs: object) -> ResourceAgentCall:
    return ResourceAgentCall(
        resource=kwargs.pop("resource", "r1"), agent=parse_agent(agent), action=action, **kwargs
    )  # type: ignore[arg-type]


def _run(inv: Invocation, cwd: Path) -> tuple[int, str]:
    done = subprocess.run(
        inv.argv, env=dict(inv.env), cwd=cwd, capture_output=True, text=True, timeout=60
    )
    return interpret(inv, done.returncode, done.stdout + done.stderr), done.stdout + done.stderr


def test_ocf_environment_is_exactly_pacemakers(paths: AgentPaths) -> None:
    agent = _script(paths.ocf_root / "resource.d" / "acme" / "Thing", "exit 0\n")
    call = _call(
        "ocf:acme:Thing",
        "monitor",
        resource="thing-1",
        params={"ip": "10.0.0.1", "OCF_CHECK_LEVEL": "10"},
        meta={"clone-max": "2", "notify": "true", "timeout": "999"},
        interval=10,
        timeout=20.5,
    )
    inv = build_invocation(call, paths, base_env=BASE_ENV)
    assert inv.argv == (str(agent), "monitor")
    assert (inv.standard, inv.action) == ("ocf", "monitor")
    assert dict(inv.env) == {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin:/opt/tool/bin",
        "HOME": "/root",
        "OCF_ROOT": str(paths.ocf_root),
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_EXIT_REASON_PREFIX": "ocf-exit-reason:",
        "OCF_RESOURCE_INSTANCE": "thing-1",
        "OCF_RESOURCE_TYPE": "Thing",
        "OCF_RESOURCE_PROVIDER": "acme",
        "OCF_RESKEY_ip": "10.0.0.1",
        "OCF_RESKEY_OCF_CHECK_LEVEL": "10",  # resource-agents' ocf-shellfuncs reads it so
        "OCF_RESKEY_CRM_meta_clone_max": "2",
        "OCF_RESKEY_CRM_meta_notify": "true",
        "OCF_RESKEY_CRM_meta_interval": "10000",
        "OCF_RESKEY_CRM_meta_timeout": "20500",  # the call's timeout wins over meta
    }


def test_the_environment_and_call_cannot_be_changed_afterwards(paths: AgentPaths) -> None:
    _script(paths.ocf_root / "resource.d" / "acme" / "Thing", "exit 0\n")
    params = {"a": "1"}
    call = _call("ocf:acme:Thing", "start", params=params)
    params["a"] = "2"
    assert call.params["a"] == "1"
    assert hash(call) == hash(_call("ocf:acme:Thing", "start", params={"a": "1"}))
    inv = build_invocation(call, paths, base_env=BASE_ENV)
    with pytest.raises(TypeError):
        inv.env["OCF_RESKEY_a"] = "3"  # type: ignore[index]
    assert hash(inv) == hash(build_invocation(call, paths, base_env=BASE_ENV))


def test_sane_path_puts_the_system_directories_first() -> None:
    assert sane_path(None) == "/usr/sbin:/usr/bin:/sbin:/bin"
    assert sane_path("/bin:/home/u/bin::/usr/bin") == "/usr/sbin:/usr/bin:/sbin:/bin:/home/u/bin"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"params": {"a=b": "x"}}, "bad parameter name 'a=b'"),
        ({"params": {"": "x"}}, "bad parameter name ''"),
        ({"params": {"a b": "x"}}, "bad parameter name 'a b'"),
        ({"params": {"x": "a\0b"}}, "without NUL"),
        ({"meta": {"a=b": "x"}}, "bad meta attribute name 'a=b'"),
        ({"interval": -1}, "interval must be >= 0"),
        ({"timeout": 0}, "timeout > 0"),
    ],
)
def test_bad_calls_are_clear_errors(paths: AgentPaths, kwargs: dict, says: str) -> None:
    _script(paths.ocf_root / "resource.d" / "acme" / "Thing", "exit 0\n")
    with pytest.raises(AgentError, match=says.replace("(", r"\(")):
        build_invocation(_call("ocf:acme:Thing", "start", **kwargs), paths, base_env=BASE_ENV)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(), st.text()), st.dictionaries(st.text(), st.text()))
def test_any_params_give_the_env_or_an_agent_error(
    paths: AgentPaths, params: dict[str, str], meta: dict[str, str]
) -> None:
    _script(paths.ocf_root / "resource.d" / "acme" / "Thing", "exit 0\n")
    try:
        inv = build_invocation(_call("ocf:acme:Thing", "start", params=params, meta=meta), paths)
    except AgentError:
        return
    for name, value in params.items():
        if name not in ("CRM_meta_interval", "CRM_meta_timeout"):  # the call's own win
            assert inv.env["OCF_RESKEY_" + name] == value


def test_bad_action_name_is_a_clear_error(paths: AgentPaths) -> None:
    _script(paths.ocf_root / "resource.d" / "acme" / "Thing", "exit 0\n")
    with pytest.raises(AgentError, match="bad action '--help'"):
        build_invocation(_call("ocf:acme:Thing", "--help"), paths)


def test_a_missing_agent_is_a_clear_error(paths: AgentPaths) -> None:
    with pytest.raises(AgentError, match="not found"):
        build_invocation(_call("ocf:acme:Missing", "start"), paths)


def test_lsb_monitor_is_called_as_status_without_ocf_variables(paths: AgentPaths) -> None:
    script = _script(paths.init_d / "web", "exit 0\n")
    inv = build_invocation(_call("lsb:web", "monitor", params={"x": "1"}), paths, BASE_ENV)
    assert inv.argv == (str(script), "status")
    assert (inv.standard, inv.action) == ("lsb", "monitor")
    assert dict(inv.env) == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin:/opt/tool/bin", "HOME": "/root"}
    assert build_invocation(_call("lsb:web", "start"), paths).argv == (str(script), "start")
    with pytest.raises(AgentError, match="LSB scripts have no 'promote' action"):
        build_invocation(_call("lsb:web", "promote"), paths)


def test_heartbeat_r1_gets_its_args_before_the_action(paths: AgentPaths) -> None:
    script = _script(paths.ha_resource_d / "IPaddr2", "exit 0\n")
    call = _call("heartbeat:IPaddr2", "monitor", r1_args=("10.0.0.1/24/eth0",))
    inv = build_invocation(call, paths, BASE_ENV)
    assert inv.argv == (str(script), "10.0.0.1/24/eth0", "status")
    assert inv.standard == "heartbeat"
    with pytest.raises(AgentError, match="heartbeat R1 scripts have no 'promote' action"):
        build_invocation(_call("heartbeat:IPaddr2", "promote"), paths)


def test_systemd_without_systemd_is_a_clear_error(paths: AgentPaths) -> None:
    with pytest.raises(AgentError, match="systemd is not running"):
        build_invocation(_call("systemd:nginx", "start"), paths)


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_systemd_calls_systemctl_with_a_unit_name(paths: AgentPaths) -> None:
    paths.systemd_run.mkdir()
    inv = build_invocation(_call("systemd:nginx", "monitor"), paths, BASE_ENV)
    assert inv.argv[1:] == ("is-active", "nginx.service")
    assert Path(inv.argv[0]).name == "systemctl"
    start = build_invocation(_call("systemd:getty@tty1.service", "start"), paths, BASE_ENV)
    assert start.argv[1:] == ("start", "getty@tty1.service")
    service = build_invocation(_call("service:nginx", "stop"), paths, BASE_ENV)
    assert (service.standard, service.argv[1:]) == ("systemd", ("stop", "nginx.service"))
    with pytest.raises(AgentError, match="systemd units have no 'promote' action"):
        build_invocation(_call("systemd:nginx", "promote"), paths)


def test_systemd_unit_names() -> None:
    assert systemd_unit("nginx") == "nginx.service"
    assert systemd_unit("nginx.service") == "nginx.service"
    assert systemd_unit("data.mount") == "data.mount"
    assert systemd_unit("my.app") == "my.app.service"


def test_service_is_lsb_when_the_script_exists(paths: AgentPaths) -> None:
    script = _script(paths.init_d / "web", "exit 0\n")
    inv = build_invocation(_call("service:web", "monitor"), paths, BASE_ENV)
    assert (inv.standard, inv.argv) == ("lsb", (str(script), "status"))


def _inv(standard: str, *argv: str) -> Invocation:
    return Invocation(argv, {}, standard, argv[-1])  # type: ignore[arg-type]


def test_interpret_ocf() -> None:
    inv = _inv("ocf", "/agent", "monitor")
    for code in range(10):
        assert interpret(inv, code) == code
    assert interpret(inv, 190) == OcfRc.DEGRADED
    assert interpret(inv, 191) == OcfRc.DEGRADED_PROMOTED
    for code in (10, 127, 126, 255, -9, -15):
        assert interpret(inv, code) == OcfRc.ERR_GENERIC


def test_interpret_lsb() -> None:
    status = _inv("lsb", "/etc/init.d/x", "status")
    assert [interpret(status, c) for c in (0, 1, 2, 3, 4)] == [0, 7, 7, 7, 1]
    start = _inv("lsb", "/etc/init.d/x", "start")
    assert [interpret(start, c) for c in (0, 1, 5, 7, 8, -9)] == [0, 1, 5, 7, 1, 1]


def test_interpret_systemd() -> None:
    active = Invocation(("/bin/systemctl", "is-active", "x.service"), {}, "systemd", "monitor")
    assert [interpret(active, c) for c in (0, 1, 3, 4)] == [0, 7, 7, 7]
    start = Invocation(("/bin/systemctl", "start", "x.service"), {}, "systemd", "start")
    assert [interpret(start, c) for c in (0, 1, 5)] == [0, 1, 5]


def test_interpret_heartbeat_r1_status_reads_the_output() -> None:
    status = _inv("heartbeat", "/etc/ha.d/resource.d/x", "10.0.0.1", "status")
    # heartbeat's ResourceManager greps the output of status and ignores the exit code.
    assert interpret(status, 0, "INFO: IPaddr2 Running OK\n") == 0
    assert interpret(status, 0, "httpd (pid 42) is running...\n") == 0
    assert interpret(status, 0, "httpd is not running\n") == 7
    assert interpret(status, 0, "stopped\n") == 7
    assert interpret(status, 7, "INFO:  Resource is stopped\n") == 7
    # No verdict in the output: the exit code, as LSB status, with the wrappers' OCF 7.
    assert interpret(status, 0, "") == 0
    assert interpret(status, 3, "") == 7
    assert interpret(status, 7, "") == 7
    assert interpret(status, 4, "??") == 1
    start = _inv("heartbeat", "/etc/ha.d/resource.d/x", "start")
    assert interpret(start, 0, "stopped") == 0  # only status reads the output
    assert interpret(start, 1) == 1


@pytest.mark.skipif(not DEBIAN_DUMMY.exists(), reason="Debian's resource-agents is not installed")
def test_debian_dummy_start_monitor_stop(tmp_path: Path) -> None:
    state = tmp_path / "dummy.state"
    params = {"state": str(state)}

    def run(action: str) -> int:
        call = _call("ocf:heartbeat:Dummy", action, resource="dummy-1", params=params)
        return _run(build_invocation(call), tmp_path)[0]

    assert run("monitor") == OcfRc.NOT_RUNNING  # a probe before start
    assert run("start") == OcfRc.SUCCESS
    assert state.exists()
    assert run("monitor") == OcfRc.SUCCESS
    assert run("stop") == OcfRc.SUCCESS
    assert not state.exists()
    assert run("monitor") == OcfRc.NOT_RUNNING
    assert run("stop") == OcfRc.SUCCESS  # stopping a stopped resource succeeds
    assert run("validate-all") == OcfRc.SUCCESS
    assert run("no-such-action") == OcfRc.ERR_UNIMPLEMENTED


def test_an_ocf_agent_sees_exactly_the_built_environment(paths: AgentPaths, tmp_path: Path) -> None:
    dump = tmp_path / "env.out"
    _script(paths.ocf_root / "resource.d" / "acme" / "Env", f'env > "{dump}"\nexit 7\n')
    call = _call("ocf:acme:Env", "monitor", params={"msg": "a b 'c'\n$d"}, interval=5)
    inv = build_invocation(call, paths, base_env=BASE_ENV)
    assert _run(inv, tmp_path)[0] == OcfRc.NOT_RUNNING
    seen = dict(line.split("=", 1) for line in dump.read_text().split("\n") if "=" in line)
    assert seen["OCF_RESKEY_CRM_meta_interval"] == "5000"
    assert seen["OCF_RESOURCE_INSTANCE"] == "r1"
    assert "OCF_RESKEY_leaked" not in seen
    assert seen["PATH"].startswith("/usr/sbin:/usr/bin:/sbin:/bin")


LSB_SCRIPT = """\
STATE="{state}"
case "$1" in
  start) touch "$STATE"; exit 0 ;;
  stop) rm -f "$STATE"; exit 0 ;;
  status) if [ -e "$STATE" ]; then echo running; exit 0; else echo stopped; exit 3; fi ;;
  *) echo "usage: $0 start|stop|status"; exit 3 ;;
esac
"""


def test_an_lsb_script_start_status_stop(paths: AgentPaths, tmp_path: Path) -> None:
    state = tmp_path / "web.state"
    _script(paths.init_d / "web", LSB_SCRIPT.format(state=state))

    def run(action: str) -> int:
        return _run(build_invocation(_call("lsb:web", action), paths), tmp_path)[0]

    assert run("monitor") == OcfRc.NOT_RUNNING  # LSB status 3
    assert run("start") == OcfRc.SUCCESS
    assert run("monitor") == OcfRc.SUCCESS
    assert run("stop") == OcfRc.SUCCESS
    assert run("status") == OcfRc.NOT_RUNNING
    assert run("restart") == OcfRc.ERR_UNIMPLEMENTED  # LSB 3 for start-like actions


def test_an_lsb_script_dead_with_pidfile_is_not_running(paths: AgentPaths, tmp_path: Path) -> None:
    _script(paths.init_d / "dead", 'echo "dead but pid file exists"; exit 1\n')
    inv = build_invocation(_call("lsb:dead", "monitor"), paths)
    assert _run(inv, tmp_path)[0] == OcfRc.NOT_RUNNING


def test_an_old_r1_script_that_exits_0_but_says_stopped(paths: AgentPaths, tmp_path: Path) -> None:
    flag = tmp_path / "up"
    _script(
        paths.ha_resource_d / "Old",
        f'[ "$1" = arg1 ] || exit 2\ncase "$2" in start) touch "{flag}";; '
        f'status) if [ -e "{flag}" ]; then echo OK; else echo stopped; fi;; esac\nexit 0\n',
    )

    def run(action: str) -> int:
        call = _call("heartbeat:Old", action, r1_args=("arg1",))
        return _run(build_invocation(call, paths), tmp_path)[0]

    assert run("monitor") == OcfRc.NOT_RUNNING
    assert run("start") == OcfRc.SUCCESS
    assert run("monitor") == OcfRc.SUCCESS


@pytest.mark.skipif(not R1_IPADDR2.exists(), reason="heartbeat's R1 IPaddr2 is not installed")
def test_heartbeat_r1_ipaddr2_status_of_an_absent_address(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never configured here; status only reads the addresses.
    call = _call("heartbeat:IPaddr2", "monitor", r1_args=("192.0.2.77/24/lo",))
    inv = build_invocation(call)
    assert inv.argv == (str(R1_IPADDR2), "192.0.2.77/24/lo", "status")
    rc, output = _run(inv, tmp_path)
    assert rc == OcfRc.NOT_RUNNING, output
    assert "stopped" in output
