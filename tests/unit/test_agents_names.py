"""Agent names: parsing, locating the executable, listing, haresources entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.agents.names import (
    AgentError,
    AgentPaths,
    AgentSpec,
    list_agents,
    locate,
    parse_agent,
    parse_r1_resource,
    resolve_service,
)

DEBIAN_OCF = Path("/usr/lib/ocf/resource.d")


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("ocf:heartbeat:IPaddr2", AgentSpec("ocf", "heartbeat", "IPaddr2")),
        ("ocf:pacemaker:Stateful", AgentSpec("ocf", "pacemaker", "Stateful")),
        ("ocf:hastack:Dummy", AgentSpec("ocf", "hastack", "Dummy")),
        ("lsb:nginx", AgentSpec("lsb", None, "nginx")),
        ("heartbeat:IPaddr2", AgentSpec("heartbeat", None, "IPaddr2")),
        ("systemd:nginx", AgentSpec("systemd", None, "nginx")),
        ("systemd:getty@tty1.service", AgentSpec("systemd", None, "getty@tty1.service")),
        ("service:nginx", AgentSpec("service", None, "nginx")),
        ("OCF:heartbeat:Dummy", AgentSpec("ocf", "heartbeat", "Dummy")),
        ("stonith:fence_ipmilan", AgentSpec("stonith", None, "fence_ipmilan")),
        ("stonith:external/ssh", AgentSpec("stonith", None, "external/ssh")),
        ("stonith:hastack/manual", AgentSpec("stonith", None, "hastack/manual")),
    ],
)
def test_parse_agent_accepts_the_standard_forms(text: str, spec: AgentSpec) -> None:
    assert parse_agent(text) == spec


@pytest.mark.parametrize(
    "text", ["ocf:heartbeat:IPaddr2", "lsb:nginx", "heartbeat:IPaddr2", "systemd:nginx"]
)
def test_str_gives_the_name_back(text: str) -> None:
    assert str(parse_agent(text)) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("IPaddr2", "no standard"),
        ("", "no standard"),
        ("ocf:IPaddr2", "ocf needs a provider: ocf:PROVIDER:TYPE"),
        ("ocf::IPaddr2", "empty provider"),
        ("ocf:heartbeat:", "empty type"),
        ("ocf:heartbeat:a:b", "too many ':'"),
        ("ocf:heartbeat:../../bin/sh", "may hold only"),
        ("ocf:..:Dummy", "may hold only"),
        ("lsb:", "empty name"),
        ("lsb:x:nginx", "lsb agents have no provider"),
        ("lsb:.hidden", "may hold only"),
        ("lsb:a b", "may hold only"),
        ("systemd:--all", "may hold only"),
        ("stonith:../../bin/sh", "a fence device type is fence_NAME"),
        ("stonith:a/b/c", "a fence device type is fence_NAME"),
        ("upstart:x", "known: ocf, lsb, heartbeat, systemd, service"),
    ],
)
def test_parse_agent_errors_say_what_was_given_and_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(AgentError) as err:
        parse_agent(text)
    assert says in str(err.value)
    assert repr(text) in str(err.value)


@given(st.text())
def test_parse_agent_never_raises_anything_else(text: str) -> None:
    try:
        spec = parse_agent(text)
    except AgentError:
        return
    assert "/" not in spec.type and "\0" not in spec.type
    assert not spec.type.startswith((".", "-"))
    assert parse_agent(str(spec)) == spec


def _script(path: Path, body: str = "exit 0\n", mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


@pytest.fixture
def paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths(
        ocf_root=tmp_path / "ocf",
        init_d=tmp_path / "init.d",
        ha_resource_d=tmp_path / "resource.d",
        systemd_run=tmp_path / "run-systemd",
        systemd_unit_dirs=(tmp_path / "units",),
    )


def test_locate_ocf(paths: AgentPaths) -> None:
    agent = _script(paths.ocf_root / "resource.d" / "acme" / "Thing")
    assert locate(parse_agent("ocf:acme:Thing"), paths) == agent


def test_locate_names_the_place_searched(paths: AgentPaths) -> None:
    with pytest.raises(AgentError) as err:
        locate(parse_agent("ocf:acme:Missing"), paths)
    assert str(paths.ocf_root / "resource.d" / "acme" / "Missing") in str(err.value)
    assert "not found" in str(err.value)


def test_locate_refuses_a_file_that_is_not_executable(paths: AgentPaths) -> None:
    agent = _script(paths.init_d / "web", mode=0o644)
    with pytest.raises(AgentError) as err:
        locate(parse_agent("lsb:web"), paths)
    assert f"not executable: chmod +x {agent}" in str(err.value)


def test_locate_refuses_a_directory(paths: AgentPaths) -> None:
    (paths.init_d / "web").mkdir(parents=True)
    with pytest.raises(AgentError, match="is not a regular file"):
        locate(parse_agent("lsb:web"), paths)


def test_locate_follows_symlinks(paths: AgentPaths) -> None:
    target = _script(paths.init_d / "real")
    (paths.init_d / "alias").symlink_to(target)
    assert locate(parse_agent("lsb:alias"), paths) == paths.init_d / "alias"


def test_locate_heartbeat_prefers_resource_d_then_init_d(paths: AgentPaths) -> None:
    in_init = _script(paths.init_d / "apache")
    assert locate(parse_agent("heartbeat:apache"), paths) == in_init
    in_resource_d = _script(paths.ha_resource_d / "apache")
    assert locate(parse_agent("heartbeat:apache"), paths) == in_resource_d


def test_locate_heartbeat_names_both_places(paths: AgentPaths) -> None:
    with pytest.raises(AgentError) as err:
        locate(parse_agent("heartbeat:nothing"), paths)
    assert str(paths.ha_resource_d / "nothing") in str(err.value)
    assert str(paths.init_d / "nothing") in str(err.value)


def test_locate_systemd_without_systemd_is_a_clear_error(paths: AgentPaths) -> None:
    with pytest.raises(AgentError, match="systemd is not running"):
        locate(parse_agent("systemd:nginx"), paths)


def test_locate_systemd_gives_systemctl_when_systemd_runs(paths: AgentPaths) -> None:
    paths.systemd_run.mkdir()
    if not any(Path(d, "systemctl").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("systemctl is not installed")
    assert locate(parse_agent("systemd:nginx"), paths).name == "systemctl"


def test_service_resolves_to_lsb_when_a_script_exists(paths: AgentPaths) -> None:
    paths.systemd_run.mkdir()
    script = _script(paths.init_d / "web")
    assert resolve_service(parse_agent("service:web"), paths) == AgentSpec("lsb", None, "web")
    assert locate(parse_agent("service:web"), paths) == script


def test_service_resolves_to_systemd_when_systemd_runs(paths: AgentPaths) -> None:
    paths.systemd_run.mkdir()
    assert resolve_service(parse_agent("service:web"), paths) == AgentSpec("systemd", None, "web")


def test_service_without_script_or_systemd_is_lsb_and_fails_clearly(paths: AgentPaths) -> None:
    assert resolve_service(parse_agent("service:web"), paths).standard == "lsb"
    with pytest.raises(AgentError, match="not found"):
        locate(parse_agent("service:web"), paths)


def test_list_agents_lists_what_exists(paths: AgentPaths) -> None:
    _script(paths.ocf_root / "resource.d" / "acme" / "B")
    _script(paths.ocf_root / "resource.d" / "acme" / "A")
    _script(paths.ocf_root / "resource.d" / "acme" / "notes.txt", mode=0o644)
    _script(paths.ocf_root / "resource.d" / "acme" / ".hidden")
    _script(paths.ocf_root / "resource.d" / "zeta" / "Z")
    _script(paths.init_d / "nginx")
    _script(paths.ha_resource_d / "IPaddr2")
    assert [str(s) for s in list_agents(paths)] == [
        "ocf:acme:A",
        "ocf:acme:B",
        "ocf:zeta:Z",
        "lsb:nginx",
        "heartbeat:IPaddr2",
    ]
    assert [str(s) for s in list_agents(paths, "ocf", "zeta")] == ["ocf:zeta:Z"]
    assert [str(s) for s in list_agents(paths, "lsb")] == ["lsb:nginx"]
    assert [str(s) for s in list_agents(paths, "systemd")] == []  # systemd is not running
    assert [str(s) for s in list_agents(paths, "service")] == ["service:nginx"]


def test_list_agents_lists_systemd_services_when_systemd_runs(paths: AgentPaths) -> None:
    paths.systemd_run.mkdir()
    units = paths.systemd_unit_dirs[0]
    units.mkdir()
    for name in ("nginx.service", "getty@.service", "multi-user.target"):
        (units / name).write_text("[Unit]\n")
    assert [str(s) for s in list_agents(paths, "systemd")] == ["systemd:nginx"]


def test_list_agents_of_missing_directories_is_empty(paths: AgentPaths) -> None:
    assert list_agents(paths) == []


def test_list_agents_rejects_unknown_filters(paths: AgentPaths) -> None:
    with pytest.raises(AgentError, match="unknown standard 'nagios'"):
        list_agents(paths, "nagios")
    with pytest.raises(AgentError, match="only ocf agents have providers"):
        list_agents(paths, "lsb", "heartbeat")


@pytest.mark.skipif(not DEBIAN_OCF.is_dir(), reason="Debian's resource-agents is not installed")
def test_debian_agents_are_found_and_listed() -> None:
    listed = {str(s) for s in list_agents()}
    assert {"ocf:heartbeat:Dummy", "ocf:heartbeat:IPaddr2", "ocf:pacemaker:Stateful"} <= listed
    assert locate(parse_agent("ocf:heartbeat:Dummy")) == DEBIAN_OCF / "heartbeat" / "Dummy"
    if Path("/etc/ha.d/resource.d/IPaddr2").exists():
        assert "heartbeat:IPaddr2" in listed
        assert locate(parse_agent("heartbeat:IPaddr2")) == Path("/etc/ha.d/resource.d/IPaddr2")
    assert all(os.access(locate(s), os.X_OK) for s in list_agents(standard="ocf"))


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("IPaddr2::10.0.0.1/24/eth0", ("IPaddr2", ("10.0.0.1/24/eth0",))),
        (
            "IPaddr2::135.9.216.3/28/eth0/135.9.216.12",
            ("IPaddr2", ("135.9.216.3/28/eth0/135.9.216.12",)),
        ),
        ("Filesystem::/dev/sda1::/data1::ext2", ("Filesystem", ("/dev/sda1", "/data1", "ext2"))),
        ("httpd", ("httpd", ())),
        ("10.0.0.170", ("IPaddr", ("10.0.0.170",))),  # a bare address means IPaddr
        ("10.0.0.170/24/eth0", ("IPaddr", ("10.0.0.170/24/eth0",))),
        ("drbddisk::r0::", ("drbddisk", ("r0",))),
    ],
)
def test_parse_r1_resource(entry: str, parsed: tuple[str, tuple[str, ...]]) -> None:
    assert parse_r1_resource(entry) == parsed


@pytest.mark.parametrize("entry", ["", "  ", "../x::a", "a b::c", "::10.0.0.1"])
def test_parse_r1_resource_rejects_bad_entries(entry: str) -> None:
    with pytest.raises(AgentError, match="haresources entry"):
        parse_r1_resource(entry)


@given(st.text())
def test_parse_r1_resource_never_raises_anything_else(text: str) -> None:
    try:
        name, args = parse_r1_resource(text)
    except AgentError:
        return
    assert "/" not in name and all(args)
