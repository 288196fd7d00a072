"""hastack's built-in OCF agents, without root: each run as `python -m hastack.agents.builtin.NAME
ACTION` with OCF_RESKEY_* parameters, as Pacemaker would run it.

Dummy, Stateful and anything go through their whole life cycle; httpcheck checks a real HTTP
server on 127.0.0.1; IPaddr2 and Filesystem are checked where no root is needed (parameter
errors, probes, what is already there: 127.0.0.1 on lo, /proc). Adding addresses and mounting
are in tests/lab/test_agents_builtin.py.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import hastack
from hastack.agents.builtin import BUILTIN_AGENTS, ocf
from hastack.agents.builtin.install import MARKER, InstallError, install_ocf, install_r1
from hastack.agents.builtin.ipaddr2 import _arp_frame, r1_environment
from hastack.agents.builtin.ocf import OcfError, OcfRc

SRC = str(Path(hastack.__file__).resolve().parent.parent)
DTD = Path("/usr/share/resource-agents/ra-api-1.dtd")


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def reasons(self) -> list[str]:
        return [
            line.removeprefix("ocf-exit-reason:")
            for line in self.err.splitlines()
            if line.startswith("ocf-exit-reason:")
        ]


def run_agent(
    module: str,
    *args: str,
    tmp: Path,
    instance: str = "r1",
    env: dict[str, str] | None = None,
    **params: str,
) -> Result:
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": SRC,
        "OCF_ROOT": "/usr/lib/ocf",
        "HA_RSCTMP": str(tmp / "rsctmp"),
        "HA_VARRUN": str(tmp / "run"),
        "OCF_RESOURCE_INSTANCE": instance,
        **{f"OCF_RESKEY_{k}": v for k, v in params.items()},
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", f"hastack.agents.builtin.{module}", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# --- meta-data ---------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(BUILTIN_AGENTS))
def test_meta_data_is_xml_with_the_required_elements(type_name: str, tmp_path: Path) -> None:
    result = run_agent(BUILTIN_AGENTS[type_name], "meta-data", tmp=tmp_path)
    assert result.rc == 0, result.err
    root = etree.fromstring(result.out.encode())
    assert root.tag == "resource-agent"
    assert root.get("name") == type_name
    assert root.findtext("version") == "1.1"
    assert root.findtext("shortdesc").strip()
    assert root.findtext("longdesc").strip()
    params = root.findall("parameters/parameter")
    assert params, "an agent without parameters"
    for p in params:
        assert p.get("name") and p.get("required") in ("0", "1") and p.get("unique") in ("0", "1")
        assert p.find("content").get("type") in ("string", "integer", "boolean", "time")
    actions = {a.get("name"): a for a in root.findall("actions/action")}
    for name in ("start", "stop", "monitor", "meta-data", "validate-all"):
        assert name in actions, f"{type_name} lacks action {name}"
        assert actions[name].get("timeout", "").endswith("s")
    assert actions["monitor"].get("interval")


@pytest.mark.parametrize("type_name", sorted(BUILTIN_AGENTS))
def test_meta_data_is_valid_against_ra_api_dtd(type_name: str, tmp_path: Path) -> None:
    if not DTD.exists():
        pytest.skip(f"{DTD} not installed (Debian package resource-agents)")
    result = run_agent(BUILTIN_AGENTS[type_name], "meta-data", tmp=tmp_path)
    dtd = etree.DTD(str(DTD))
    root = etree.fromstring(result.out.encode())
    assert dtd.validate(root), dtd.error_log.filter_from_errors()


@pytest.mark.parametrize("type_name", sorted(BUILTIN_AGENTS))
def test_meta_data_reads_back_through_hastacks_parser(type_name: str, tmp_path: Path) -> None:
    from hastack.agents.metadata import parse_metadata

    result = run_agent(BUILTIN_AGENTS[type_name], "meta-data", tmp=tmp_path)
    meta = parse_metadata(result.out, f"ocf:hastack:{type_name}")
    module = __import__(f"hastack.agents.builtin.{BUILTIN_AGENTS[type_name]}", fromlist=["INFO"])
    info: ocf.AgentInfo = module.INFO
    assert [p.name for p in meta.parameters] == [p.name for p in info.params]
    for action in info.actions:
        assert meta.advised_timeout(action.name, action.interval or 0) == action.timeout


def test_meta_data_defaults_are_computed_for_the_resource(tmp_path: Path) -> None:
    result = run_agent("dummy", "meta-data", tmp=tmp_path, instance="web")
    root = etree.fromstring(result.out.encode())
    content = root.find("parameters/parameter[@name='state']/content")
    assert content.get("default") == f"{tmp_path}/rsctmp/Dummy-web.state"


def test_required_parameters_are_marked(tmp_path: Path) -> None:
    wanted = {"IPaddr2": {"ip"}, "Filesystem": {"device", "directory"}, "anything": {"binfile"}}
    for type_name, names in wanted.items():
        root = etree.fromstring(
            run_agent(BUILTIN_AGENTS[type_name], "meta-data", tmp=tmp_path).out.encode()
        )
        required = {p.get("name") for p in root.findall("parameters/parameter[@required='1']")}
        assert required == names


# --- the OCF plumbing ----------------------------------------------------------------------


def test_unknown_action_is_unimplemented_with_usage_and_reason(tmp_path: Path) -> None:
    result = run_agent("dummy", "frobnicate", tmp=tmp_path)
    assert result.rc == OcfRc.ERR_UNIMPLEMENTED
    assert "usage:" in result.err
    assert result.reasons == ["Dummy does not implement the action 'frobnicate'"]


def test_promote_of_a_non_promotable_agent_is_unimplemented(tmp_path: Path) -> None:
    assert run_agent("dummy", "promote", tmp=tmp_path).rc == OcfRc.ERR_UNIMPLEMENTED


def test_no_action_or_two_actions_is_an_argument_error(tmp_path: Path) -> None:
    assert run_agent("dummy", tmp=tmp_path).rc == OcfRc.ERR_ARGS
    assert run_agent("stateful", "start", "stop", tmp=tmp_path).rc == OcfRc.ERR_ARGS


def test_usage_succeeds_and_lists_the_actions(tmp_path: Path) -> None:
    result = run_agent("stateful", "usage", tmp=tmp_path)
    assert result.rc == 0
    assert "promote" in result.out and "notify" in result.out


def test_missing_instance_under_a_cluster_manager_is_an_argument_error(tmp_path: Path) -> None:
    result = run_agent(
        "dummy", "monitor", tmp=tmp_path, instance="", env={"OCF_RA_VERSION_MAJOR": "1"}
    )
    assert result.rc == OcfRc.ERR_ARGS
    assert "OCF_RESOURCE_INSTANCE" in result.reasons[0]


def test_an_agent_bug_is_a_generic_error_with_one_reason_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(ctx: ocf.Context) -> int:
        raise RuntimeError("boom\nsecond line")

    info = ocf.AgentInfo("T", "t", "t", (), (ocf.Action("start", 5),))
    rc = ocf.run_agent(info, {"start": broken}, ["start"], {"OCF_RESOURCE_INSTANCE": "x"})
    err = capsys.readouterr().err
    assert rc == OcfRc.ERR_GENERIC
    assert err == "ocf-exit-reason:start failed: RuntimeError: boom second line\n"
    assert "Traceback" not in err


def test_parameters_get_meta_data_defaults_and_empty_means_default() -> None:
    info = ocf.AgentInfo(
        "T",
        "t",
        "t",
        (ocf.Param("a", "a", default="{HA_RSCTMP}/x-{instance}"), ocf.Param("b", "b")),
        (),
    )
    env = {"HA_RSCTMP": "/r", "OCF_RESKEY_b": "given", "OCF_RESKEY_a": ""}
    assert ocf.resolve_params(info, "web:2", env) == {"a": "/r/x-web", "b": "given"}
    unique = {**env, "OCF_RESKEY_CRM_meta_globally_unique": "true"}
    assert ocf.resolve_params(info, "web:2", unique)["a"] == "/r/x-web:2"


@pytest.mark.parametrize(
    ("text", "seconds"), [("5", 5.0), ("5s", 5.0), ("250ms", 0.25), ("2min", 120.0), ("1h", 3600)]
)
def test_parse_seconds(text: str, seconds: float) -> None:
    assert ocf.parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-1", "5 parsecs"])
def test_parse_seconds_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        ocf.parse_seconds(text)


# --- Dummy -----------------------------------------------------------------------------------


def test_dummy_life_cycle(tmp_path: Path) -> None:
    state = tmp_path / "rsctmp" / "Dummy-r1.state"
    steps = [
        ("monitor", 7),
        ("stop", 0),
        ("start", 0),
        ("monitor", 0),
        ("start", 0),
        ("monitor", 0),
        ("reload", 0),
        ("stop", 0),
        ("monitor", 7),
        ("stop", 0),
    ]
    for action, expected in steps:
        result = run_agent("dummy", action, tmp=tmp_path)
        assert result.rc == expected, (action, result.err)
        if action == "start":
            assert state.exists()
    assert not state.exists()


def test_dummy_anonymous_clone_instances_share_one_state_file(tmp_path: Path) -> None:
    assert run_agent("dummy", "start", tmp=tmp_path, instance="d:0").rc == 0
    assert (tmp_path / "rsctmp" / "Dummy-d.state").exists()
    assert run_agent("dummy", "monitor", tmp=tmp_path, instance="d:1").rc == 0


def test_dummy_migrate_moves_the_state(tmp_path: Path) -> None:
    source, target = tmp_path / "src.state", tmp_path / "dst.state"
    assert run_agent("dummy", "start", tmp=tmp_path, state=str(source)).rc == 0
    assert run_agent("dummy", "migrate_to", tmp=tmp_path, state=str(source)).rc == 0
    assert run_agent("dummy", "migrate_from", tmp=tmp_path, state=str(target)).rc == 0
    assert not source.exists() and target.exists()


def test_dummy_op_sleep_delays_the_action(tmp_path: Path) -> None:
    began = time.monotonic()
    assert run_agent("dummy", "monitor", tmp=tmp_path, op_sleep="0.6").rc == 7
    assert time.monotonic() - began >= 0.6


@pytest.mark.parametrize(
    ("params", "rc", "reason"),
    [
        ({"op_sleep": "soon"}, 6, "op_sleep='soon' is not a duration"),
        ({"state": "relative/path"}, 6, "must be an absolute path"),
    ],
)
def test_dummy_bad_parameters_are_not_configured(
    tmp_path: Path, params: dict[str, str], rc: int, reason: str
) -> None:
    result = run_agent("dummy", "validate-all", tmp=tmp_path, **params)
    assert result.rc == rc
    assert reason in result.reasons[0]


# --- Stateful --------------------------------------------------------------------------------


def test_stateful_roles(tmp_path: Path) -> None:
    steps = [
        ("monitor", 7), ("promote", 7), ("demote", 7), ("start", 0), ("monitor", 0),
        ("demote", 0), ("promote", 0), ("monitor", 8), ("promote", 0), ("start", 8),
        ("stop", 8), ("demote", 0), ("monitor", 0), ("stop", 0), ("monitor", 7), ("stop", 0),
    ]  # fmt: skip
    for action, expected in steps:
        result = run_agent("stateful", action, tmp=tmp_path)
        assert result.rc == expected, (action, result.err)


def test_stateful_stop_of_promoted_says_demote_first(tmp_path: Path) -> None:
    run_agent("stateful", "start", tmp=tmp_path)
    run_agent("stateful", "promote", tmp=tmp_path)
    result = run_agent("stateful", "stop", tmp=tmp_path)
    assert result.rc == OcfRc.RUNNING_PROMOTED
    assert "demote first" in result.reasons[0]


def test_stateful_garbage_state_is_a_generic_error(tmp_path: Path) -> None:
    state = tmp_path / "s.state"
    state.write_text("Sideways\n")
    result = run_agent("stateful", "monitor", tmp=tmp_path, state=str(state))
    assert result.rc == OcfRc.ERR_GENERIC
    assert "holds 'Sideways', not a role" in result.reasons[0]


def test_stateful_notify_succeeds_and_names_the_notification(tmp_path: Path) -> None:
    meta = {
        "OCF_RESKEY_CRM_meta_notify_type": "pre",
        "OCF_RESKEY_CRM_meta_notify_operation": "promote",
    }
    result = run_agent("stateful", "notify", tmp=tmp_path, env=meta)
    assert result.rc == 0
    assert "notify pre-promote" in result.err


# --- anything --------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """PIDs of daemons a test started through the agent; killed at the end whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _pid_from(pidfile: Path) -> int:
    return int(pidfile.read_text())


def test_anything_runs_and_stops_a_daemon(tmp_path: Path, daemons: list[int]) -> None:
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.log"
    script = tmp_path / "daemon.sh"
    script.write_text('#!/bin/sh\necho started "$@"\nexec sleep 1000\n')
    script.chmod(0o755)
    params = {
        "binfile": str(script),
        "cmdline_options": "'a b' c",
        "pidfile": str(pidfile),
        "logfile": str(log),
    }
    assert run_agent("anything", "monitor", tmp=tmp_path, **params).rc == 7
    assert run_agent("anything", "start", tmp=tmp_path, **params).rc == 0
    pid = _pid_from(pidfile)
    daemons.append(pid)
    assert _pid_alive(pid)
    assert log.read_text() == "started a b c\n"
    assert run_agent("anything", "monitor", tmp=tmp_path, **params).rc == 0
    assert run_agent("anything", "start", tmp=tmp_path, **params).rc == 0
    assert _pid_from(pidfile) == pid, "a second start must not start a second daemon"
    assert run_agent("anything", "stop", tmp=tmp_path, **params).rc == 0
    assert not _pid_alive(pid)
    assert not pidfile.exists()
    assert run_agent("anything", "monitor", tmp=tmp_path, **params).rc == 7
    assert run_agent("anything", "stop", tmp=tmp_path, **params).rc == 0


def test_anything_kills_a_daemon_that_ignores_the_stop_signal(
    tmp_path: Path, daemons: list[int]
) -> None:
    script = tmp_path / "stubborn.sh"
    script.write_text("#!/bin/sh\ntrap '' INT TERM\nwhile :; do sleep 0.1; done\n")
    script.chmod(0o755)
    params = {
        "binfile": str(script),
        "pidfile": str(tmp_path / "s.pid"),
        "stop_signal": "INT",
        "stop_timeout": "0.5",
    }
    assert run_agent("anything", "start", tmp=tmp_path, **params).rc == 0
    pid = _pid_from(tmp_path / "s.pid")
    daemons.append(pid)
    result = run_agent("anything", "stop", tmp=tmp_path, **params)
    assert result.rc == 0
    assert "SIGKILL" in result.err
    assert not _pid_alive(pid)


def test_anything_notices_a_dead_daemon_and_a_recycled_pid(
    tmp_path: Path, daemons: list[int]
) -> None:
    pidfile = tmp_path / "d.pid"
    params = {"binfile": "sleep", "cmdline_options": "1000", "pidfile": str(pidfile)}
    assert run_agent("anything", "start", tmp=tmp_path, **params).rc == 0
    pid = _pid_from(pidfile)
    daemons.append(pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run_agent("anything", "monitor", tmp=tmp_path, **params).rc == 7
    pidfile.write_text("1\n")  # a live process, started long before this pidfile
    assert run_agent("anything", "monitor", tmp=tmp_path, **params).rc == 7


def test_anything_start_fails_when_the_command_exits_at_once(tmp_path: Path) -> None:
    result = run_agent(
        "anything", "start", tmp=tmp_path, binfile="/bin/false", pidfile=str(tmp_path / "f.pid")
    )
    assert result.rc == OcfRc.ERR_GENERIC
    assert "exited at once with code 1" in result.reasons[0]


def test_anything_monitor_hook_failure_is_a_failure(tmp_path: Path, daemons: list[int]) -> None:
    params = {"binfile": "sleep", "cmdline_options": "1000", "pidfile": str(tmp_path / "h.pid")}
    assert run_agent("anything", "start", tmp=tmp_path, **params).rc == 0
    daemons.append(_pid_from(tmp_path / "h.pid"))
    ok = run_agent("anything", "monitor", tmp=tmp_path, monitor_hook="true", **params)
    bad = run_agent(
        "anything", "monitor", tmp=tmp_path, monitor_hook="echo sick >&2; exit 3", **params
    )
    assert ok.rc == 0
    assert bad.rc == OcfRc.ERR_GENERIC and bad.reasons == ["monitor_hook exited with 3: sick"]
    assert run_agent("anything", "stop", tmp=tmp_path, **params).rc == 0


@pytest.mark.parametrize(
    ("params", "rc", "reason"),
    [
        ({}, 6, "required parameter missing: binfile"),
        ({"binfile": "/nonexistent/prog"}, 5, "is not an executable file"),
        ({"binfile": "/bin/sleep", "stop_signal": "NOPE"}, 6, "is not a signal name"),
        ({"binfile": "/bin/sleep", "cmdline_options": "'unclosed"}, 6, "cmdline_options="),
        ({"binfile": "/bin/sleep", "stop_timeout": "eventually"}, 6, "not a duration"),
        ({"binfile": "/bin/sleep", "user": "no-such-user-hastack"}, 5, "does not exist"),
    ],
)
def test_anything_bad_parameters(
    tmp_path: Path, params: dict[str, str], rc: int, reason: str
) -> None:
    result = run_agent(
        "anything", "validate-all", tmp=tmp_path, pidfile=str(tmp_path / "x.pid"), **params
    )
    assert result.rc == rc, result.err
    assert reason in result.reasons[0]


def test_anything_probe_of_a_missing_program_is_not_running(tmp_path: Path) -> None:
    params = {"binfile": "/nonexistent/prog", "pidfile": str(tmp_path / "x.pid")}
    assert run_agent("anything", "monitor", tmp=tmp_path, **params).rc == 7
    recurring = {"OCF_RESKEY_CRM_meta_interval": "10000"}
    assert run_agent("anything", "monitor", tmp=tmp_path, env=recurring, **params).rc == 5


def test_anything_user(tmp_path: Path, daemons: list[int]) -> None:
    tmp_path.chmod(0o755)
    params = {
        "binfile": "sleep",
        "cmdline_options": "1000",
        "pidfile": str(tmp_path / "u.pid"),
        "user": "nobody",
    }
    result = run_agent("anything", "start", tmp=tmp_path, **params)
    if os.geteuid() != 0:
        assert result.rc == OcfRc.ERR_PERM
        assert "needs root" in result.reasons[0]
        return
    assert result.rc == 0, result.err
    pid = _pid_from(tmp_path / "u.pid")
    daemons.append(pid)
    uid_line = next(
        line
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    assert uid_line.split()[1] == str(__import__("pwd").getpwnam("nobody").pw_uid)
    assert run_agent("anything", "stop", tmp=tmp_path, **params).rc == 0


# --- httpcheck ---------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1.5)
        status = {"/bad": 503, "/missing": 404}.get(self.path, 200)
        body = f"status {status} for {self.path}: healthy={status == 200}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_httpcheck_life_cycle(tmp_path: Path, http_port: int) -> None:
    params = {"port": str(http_port), "path": "/health"}
    assert run_agent("httpcheck", "monitor", tmp=tmp_path, **params).rc == 7
    assert run_agent("httpcheck", "start", tmp=tmp_path, **params).rc == 0
    assert run_agent("httpcheck", "monitor", tmp=tmp_path, **params).rc == 0
    assert run_agent("httpcheck", "stop", tmp=tmp_path, **params).rc == 0
    assert run_agent("httpcheck", "monitor", tmp=tmp_path, **params).rc == 7


@pytest.mark.parametrize(
    ("params", "rc", "reason"),
    [
        ({"path": "/bad"}, 1, "status 503, expected 200"),
        ({"path": "/bad", "expected_status": "503"}, 0, None),
        ({"path": "/missing", "expected_status": "2xx,4xx"}, 0, None),
        ({"path": "/ok", "expected_status": "3xx"}, 1, "status 200, expected 3xx"),
        ({"path": "/ok", "body_regex": r"healthy=True"}, 0, None),
        ({"path": "/ok", "body_regex": r"healthy=False"}, 1, "body does not match"),
        ({"path": "/slow", "timeout": "300ms"}, 1, "no answer within 0.3s"),
    ],
)
def test_httpcheck_monitor_outcomes(
    tmp_path: Path, http_port: int, params: dict[str, str], rc: int, reason: str | None
) -> None:
    params = {"port": str(http_port), **params}
    assert run_agent("httpcheck", "start", tmp=tmp_path, **params).rc == 0
    result = run_agent("httpcheck", "monitor", tmp=tmp_path, **params)
    assert result.rc == rc, result.err
    if reason:
        assert reason in result.reasons[0]


def test_httpcheck_url_form_and_refused_connection(tmp_path: Path, http_port: int) -> None:
    good = run_agent("httpcheck", "start", tmp=tmp_path, url=f"http://127.0.0.1:{http_port}/x?y=1")
    assert good.rc == 0
    assert (
        run_agent(
            "httpcheck", "monitor", tmp=tmp_path, url=f"http://127.0.0.1:{http_port}/x?y=1"
        ).rc
        == 0
    )
    refused = run_agent(
        "httpcheck", "monitor", tmp=tmp_path, url=f"http://127.0.0.1:{_closed_port()}/"
    )
    assert refused.rc == OcfRc.ERR_GENERIC
    assert "ConnectionRefusedError" in refused.reasons[0]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"expected_status": "ok"}, "expected_status='ok'"),
        ({"url": "ftp://127.0.0.1/"}, "need http://"),
        ({"port": "0"}, "below 1"),
        ({"port": "http"}, "not an integer"),
        ({"timeout": "whenever"}, "not a duration"),
        ({"body_regex": "(unclosed"}, "body_regex="),
        ({"path": "noslash"}, "must start with /"),
    ],
)
def test_httpcheck_bad_parameters_are_not_configured(
    tmp_path: Path, params: dict[str, str], reason: str
) -> None:
    result = run_agent("httpcheck", "validate-all", tmp=tmp_path, **params)
    assert result.rc == OcfRc.ERR_CONFIGURED
    assert reason in result.reasons[0]


# --- IPaddr2 (what needs no root) ----------------------------------------------------------------


def test_ipaddr2_monitor_sees_an_address_on_lo(tmp_path: Path) -> None:
    assert run_agent("ipaddr2", "monitor", tmp=tmp_path, ip="127.0.0.1", nic="lo").rc == 0
    assert run_agent("ipaddr2", "monitor", tmp=tmp_path, ip="127.0.0.1").rc == 0
    assert run_agent("ipaddr2", "monitor", tmp=tmp_path, ip="127.0.0.77", nic="lo").rc == 7


@pytest.mark.parametrize(
    ("params", "rc", "reason"),
    [
        ({}, 6, "required parameter missing: ip"),
        ({"ip": "10.0.0.300"}, 6, "is not an IPv4 or IPv6 address"),
        ({"ip": "10.0.0.3", "cidr_netmask": "33"}, 6, "give a prefix length 0..32"),
        ({"ip": "10.0.0.3", "nic": "lo", "cidr_netmask": "8", "broadcast": "x"}, 6, "broadcast="),
        ({"ip": "10.0.0.3", "nic": "nosuchnic0"}, 2, "does not exist on this node"),
        (
            {"ip": "127.0.0.9", "nic": "lo", "cidr_netmask": "8", "iflabel": "muchtoolonglabel"},
            6,
            "longer than 15",
        ),
        ({"ip": "127.0.0.9", "arp_count": "many"}, 6, "arp_count='many'"),
    ],
)
def test_ipaddr2_bad_parameters(
    tmp_path: Path, params: dict[str, str], rc: int, reason: str
) -> None:
    result = run_agent("ipaddr2", "validate-all", tmp=tmp_path, **params)
    assert result.rc == rc, result.err
    assert reason in result.reasons[0]


def test_ipaddr2_probe_on_a_node_without_the_nic_is_not_running(tmp_path: Path) -> None:
    assert run_agent("ipaddr2", "monitor", tmp=tmp_path, ip="10.1.2.3", nic="nosuchnic0").rc == 7


def test_ipaddr2_netmask_may_be_dotted(tmp_path: Path) -> None:
    result = run_agent(
        "ipaddr2",
        "validate-all",
        tmp=tmp_path,
        ip="127.0.0.9",
        nic="lo",
        cidr_netmask="255.255.255.0",
    )
    assert result.rc == 0, result.err


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("10.0.0.5", {"ip": "10.0.0.5"}),
        ("10.0.0.5/24", {"ip": "10.0.0.5", "cidr_netmask": "24"}),
        ("10.0.0.5/24/eth0", {"ip": "10.0.0.5", "cidr_netmask": "24", "nic": "eth0"}),
        (
            "135.9.216.3/28/eth0/135.9.216.12",
            {"ip": "135.9.216.3", "cidr_netmask": "28", "nic": "eth0", "broadcast": "135.9.216.12"},
        ),
        (
            "10.0.0.5/24/10.0.0.255",
            {"ip": "10.0.0.5", "cidr_netmask": "24", "broadcast": "10.0.0.255"},
        ),
        (
            "10.0.0.5/24/eth0:web",
            {"ip": "10.0.0.5", "cidr_netmask": "24", "nic": "eth0", "iflabel": "web"},
        ),
    ],
)
def test_ipaddr2_heartbeat_r1_argument(arg: str, expected: dict[str, str]) -> None:
    env = r1_environment(arg, {"OCF_RESKEY_nic": "stale", "PATH": "/bin"})
    got = {k.removeprefix("OCF_RESKEY_"): v for k, v in env.items() if k.startswith("OCF_RESKEY")}
    assert got == expected
    assert env["OCF_RESOURCE_INSTANCE"] == f"IPaddr2_{expected['ip']}"


def test_ipaddr2_r1_status_prints_what_heartbeat_looks_for(tmp_path: Path) -> None:
    running = run_agent("ipaddr2", "127.0.0.1/8/lo", "status", tmp=tmp_path)
    stopped = run_agent("ipaddr2", "127.0.0.78/8/lo", "status", tmp=tmp_path)
    assert (running.rc, running.out) == (0, "INFO: IPaddr2 Running OK\n")
    assert (stopped.rc, stopped.out) == (7, "INFO: IPaddr2 Resource is stopped\n")
    assert run_agent("ipaddr2", "127.0.0.78/8/lo", "restart", tmp=tmp_path).rc == 3


def test_gratuitous_arp_frame_layout() -> None:
    mac, ip = bytes.fromhex("02aabbccddee"), bytes([10, 0, 0, 5])
    request = _arp_frame(mac, ip, reply=False)
    reply = _arp_frame(mac, ip, reply=True)
    assert len(request) == 60
    assert request[:6] == b"\xff" * 6 and request[6:12] == mac and request[12:14] == b"\x08\x06"
    arp = request[14:42]
    assert arp[:8] == bytes.fromhex("0001080006040001")  # Ethernet/IPv4, request
    assert arp[8:14] == mac and arp[14:18] == ip and arp[18:24] == b"\0" * 6 and arp[24:28] == ip
    assert reply[20:22] == b"\x00\x02" and reply[32:38] == b"\xff" * 6


# --- Filesystem (what needs no root) -------------------------------------------------------------


def test_filesystem_monitor_of_proc_is_running(tmp_path: Path) -> None:
    params = {"device": "proc", "directory": "/proc", "fstype": "proc"}
    assert run_agent("filesystem", "monitor", tmp=tmp_path, **params).rc == 0
    other = run_agent("filesystem", "monitor", tmp=tmp_path, device="sysfs", directory="/proc")
    assert other.rc == OcfRc.ERR_GENERIC
    assert "carries proc, not sysfs" in other.reasons[0]


def test_filesystem_missing_device(tmp_path: Path) -> None:
    params = {"device": str(tmp_path / "no.img"), "directory": str(tmp_path / "mnt")}
    assert run_agent("filesystem", "monitor", tmp=tmp_path, **params).rc == 7  # probe
    start = run_agent("filesystem", "start", tmp=tmp_path, **params)
    assert start.rc == OcfRc.ERR_INSTALLED
    assert "does not exist on this node" in start.reasons[0]
    assert run_agent("filesystem", "stop", tmp=tmp_path, **params).rc == 0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"device": "/dev/null"}, "required parameter missing: directory"),
        ({"device": "/dev/null", "directory": "mnt"}, "must be an absolute path"),
        ({"device": "/dev/null", "directory": "/"}, "cannot be managed"),
        (
            {"device": "/dev/null", "directory": "/mnt/x", "force_unmount": "maybe"},
            "is not a boolean",
        ),
    ],
)
def test_filesystem_bad_parameters_are_not_configured(
    tmp_path: Path, params: dict[str, str], reason: str
) -> None:
    result = run_agent("filesystem", "validate-all", tmp=tmp_path, **params)
    assert result.rc == OcfRc.ERR_CONFIGURED
    assert reason in result.reasons[0]


def test_mountinfo_escapes_are_decoded() -> None:
    from hastack.agents.builtin.filesystem import _unescape

    assert _unescape(r"/mnt/with\040space\011tab\134") == "/mnt/with space\ttab\\"


# --- install_ocf -------------------------------------------------------------------------------


def test_install_ocf_writes_executable_wrappers_that_run(tmp_path: Path) -> None:
    paths = install_ocf(tmp_path)
    assert sorted(p.name for p in paths) == sorted(BUILTIN_AGENTS)
    for path in paths:
        assert path.parent == tmp_path / "resource.d" / "hastack"
        assert path.stat().st_mode & 0o777 == 0o755
        assert path.read_text().startswith("#!/bin/sh\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OCF_ROOT": str(tmp_path)}
    proc = subprocess.run(
        [str(tmp_path / "resource.d/hastack/Stateful"), "meta-data"],
        capture_output=True, text=True, env=env, cwd="/", check=False, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert etree.fromstring(proc.stdout.encode()).get("name") == "Stateful"


def test_install_ocf_replaces_its_own_files_but_not_foreign_ones(tmp_path: Path) -> None:
    install_ocf(tmp_path)
    again = install_ocf(tmp_path)
    assert MARKER in again[0].read_text()
    foreign = tmp_path / "resource.d" / "hastack" / "Dummy"
    foreign.write_text("#!/bin/sh\necho someone else's\n")
    with pytest.raises(InstallError, match="was not written by hastack"):
        install_ocf(tmp_path)
    assert foreign.read_text() == "#!/bin/sh\necho someone else's\n"


def test_install_r1_writes_drbddisk_where_haresources_finds_it(tmp_path: Path) -> None:
    """heartbeat runs `resource.d/drbddisk r0 status`: with no replica daemon the disk is
    "stopped" (exit 3, as hastack's R1 reader expects), and a bad call prints the usage."""
    (path,) = install_r1(tmp_path)
    assert path == tmp_path / "resource.d" / "drbddisk"
    assert path.stat().st_mode & 0o777 == 0o755 and MARKER in path.read_text()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HASTACK_REPLICA_SOCKET": str(tmp_path / "no-daemon.sock"),
    }
    status = subprocess.run(
        [str(path), "r0", "status"], capture_output=True, text=True, env=env, cwd="/",
        check=False, timeout=30,
    )  # fmt: skip
    assert (status.returncode, status.stdout.strip()) == (3, "stopped (Unconfigured)")
    usage = subprocess.run(
        [str(path)], capture_output=True, text=True, env=env, cwd="/", check=False, timeout=30
    )
    assert usage.returncode == 2 and "usage: drbddisk" in usage.stderr


def test_installed_agent_runs_through_hastacks_executor_path(tmp_path: Path) -> None:
    """ocf:hastack:Stateful found in an OCF root, invoked and run as the cluster would: the rc
    and our exit reason come through."""
    import asyncio

    from hastack.agents.invocation import ResourceAgentCall, build_invocation
    from hastack.agents.names import AgentPaths, parse_agent
    from hastack.agents.runner import run_invocation

    install_ocf(tmp_path)
    paths = AgentPaths(ocf_root=tmp_path)

    def call(action: str) -> tuple[int, str]:
        inv = build_invocation(
            ResourceAgentCall(
                resource="st1",
                agent=parse_agent("ocf:hastack:Stateful"),
                action=action,
                params={"state": str(tmp_path / "st1.state")},
                timeout=20,
            ),
            paths,
        )
        result = asyncio.run(run_invocation(inv, 20))
        assert result.status == "done", result
        return result.rc, result.exit_reason

    assert call("promote") == (7, "promote asked of a stopped instance; start first")
    assert call("start") == (0, "")
    assert call("promote") == (0, "")
    assert call("monitor") == (8, "")


def test_ocf_error_carries_rc_and_reason() -> None:
    err = OcfError(OcfRc.ERR_PERM, "nope")
    assert (err.rc, err.reason, str(err)) == (4, "nope", "nope")


# --- fuzzing the parsers -----------------------------------------------------------------------


@given(st.text(max_size=30))
def test_parse_seconds_never_fails_otherwise(text: str) -> None:
    try:
        value = ocf.parse_seconds(text)
    except ValueError:
        return
    assert value >= 0


@given(st.lists(st.text(alphabet="0123456789abcdef.:eth-", max_size=12), min_size=1, max_size=5))
def test_r1_argument_always_maps_to_parameters(fields: list[str]) -> None:
    env = r1_environment("/".join(fields), {})
    assert env["OCF_RESKEY_ip"] == fields[0]
    assert set(env) <= {
        "OCF_RESOURCE_INSTANCE",
        *(f"OCF_RESKEY_{k}" for k in ("ip", "cidr_netmask", "nic", "iflabel", "broadcast")),
    }


_param_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            k: _param_text
            for k in ("url", "port", "path", "timeout", "expected_status", "body_regex")
        },
    )
)
def test_httpcheck_validation_never_raises(params: dict[str, str]) -> None:
    from hastack.agents.builtin import httpcheck

    env = {f"OCF_RESKEY_{k}": v for k, v in params.items() if "\0" not in v}
    env.update(OCF_RESOURCE_INSTANCE="fuzz", OCF_RESKEY_state="/nonexistent-dir-hastack/s")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        handlers = {"validate-all": lambda ctx: httpcheck.build_check(ctx) and 0}
        rc = ocf.run_agent(httpcheck.INFO, handlers, ["validate-all"], env)
    assert rc in (0, OcfRc.ERR_CONFIGURED), err.getvalue()
    assert "Traceback" not in err.getvalue()
