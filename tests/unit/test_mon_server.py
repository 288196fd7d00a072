"""The mon server's own decisions, in process: which monitors it runs itself, the disabled
state saved and loaded in mon's format, a refused reset keeping the running configuration."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from hastack.mon.config import load
from hastack.mon.model import Service
from hastack.mon.runner import NoHosts
from hastack.mon.server import MonServer, ServerError, builtin_argv

CONF = """\
    cfbasedir = {base}
    statedir = {base}
    logdir = {base}
    mondir = {base}
    alertdir = {base}

    hostgroup web 10.0.0.1 10.0.0.2

    watch web
        service http
            monitor hastack-http.monitor -p 8080 -u /health
            interval 10s
        service disk
            monitor hastack-freespace.monitor /:10% ;;
            interval 1m
        service other
            monitor http.monitor -p 80
            interval 10s
    """


def _server(tmp_path: Path) -> MonServer:
    (tmp_path / "mon.cf").write_text(textwrap.dedent(CONF.format(base=tmp_path)))
    (tmp_path / "auth.cf").write_text("command section\nlist: all\n")
    return MonServer(load(tmp_path / "mon.cf"))


def test_hastack_monitors_run_in_the_server_with_the_hosts_others_as_programs() -> None:
    http = Service("http", monitor="hastack-http.monitor -p 8080 -u /health")
    assert builtin_argv(http, ["a", "b"]) == ["http", "-p", "8080", "-u", "/health", "a", "b"]
    disk = Service("disk", monitor="hastack-freespace.monitor /:10% ;;")
    assert builtin_argv(disk, ["a"]) == ["freespace", "/:10%"]  # ;; : no hosts
    assert builtin_argv(Service("x", monitor="http.monitor -p 80"), ["a"]) is None
    assert builtin_argv(Service("x", monitor="hastack-nosuch.monitor"), ["a"]) is None
    with pytest.raises(NoHosts):
        builtin_argv(http, [])  # every host disabled, and no allow_empty_group


def test_the_disabled_state_is_saved_and_loaded_in_mons_format(tmp_path: Path) -> None:
    async def scenario() -> str:
        server = _server(tmp_path)
        server.disable_service("web", "http", "admin", alerts=False)
        server.disable_watch("web")
        server.disable_host("10.0.0.2")
        server.save_state("disabled")
        saved = (tmp_path / "disabled").read_text()
        fresh = _server(tmp_path)
        fresh.load_state("disabled")
        assert fresh.opstatus("web", "http").disabled
        assert fresh.watch_disabled("web")
        assert fresh.hostgroups()["web"].members() == ["10.0.0.1", "*10.0.0.2"]
        return saved

    saved = asyncio.run(scenario())
    assert saved.splitlines() == [
        "disable host 10.0.0.2",
        "disable watch web",
        "disable service web http",
    ]


def test_a_reset_with_a_broken_file_keeps_the_running_configuration(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = _server(tmp_path)
        (tmp_path / "mon.cf").write_text("intervall = 3\n")
        assert server.reset(stopped=False, keepstate=True) is False
        assert list(server.watches()["web"]) == ["http", "disk", "other"]

    asyncio.run(scenario())


def test_no_authfile_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "mon.cf").write_text(textwrap.dedent(CONF.format(base=tmp_path)))
    with pytest.raises(ServerError, match=f"authfile {tmp_path / 'auth.cf'} does not exist"):
        MonServer(load(tmp_path / "mon.cf"))
