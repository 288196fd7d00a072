"""hastack's built-in mon monitors and alerts, against real local services started by the test
(TCP, HTTP, SMTP-like and DNS servers on 127.0.0.1, ICMP to 127.0.0.1, files, processes) and
with mon's alert argv and stdin."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hastack.daemon.control import unix_address
from hastack.mon.builtin import InstallError, install_scripts
from hastack.mon.builtin import alerts as alerts_mod
from hastack.mon.builtin.monitors import (
    MonitorError,
    check_dns,
    check_filechange,
    check_freespace,
    check_http,
    check_ping,
    check_processes,
    check_smtp,
    check_tcp,
    format_output,
)
from hastack.mon.trap import decode_trap

# ------------------------------------------------------------------ helpers: local servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(sock: socket.socket) -> None:
    """Close a socket another thread is blocked on (close alone does not wake it)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class TcpServer:
    """Accepts connections on 127.0.0.1 and runs `handle(conn)` for each, in a thread."""

    def __init__(self, handle: Callable[[socket.socket], None] | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.handle = handle
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    if self.handle is not None:
                        self.handle(conn)
                except OSError:
                    pass

    def close(self) -> None:
        stop(self.sock)
        self.thread.join(5)


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for server in started:
        server.close()


# ------------------------------------------------------------------ tcp


def test_tcp_up_and_down(servers: list[Any]) -> None:
    server = TcpServer()
    servers.append(server)
    closed = free_port()
    assert check_tcp(["127.0.0.1"], server.port, timeout=2).failed == []
    result = check_tcp(["127.0.0.1"], closed, timeout=2)
    assert result.failed == ["127.0.0.1"]
    assert result.summary == "127.0.0.1"
    assert result.detail == "127.0.0.1 could not connect: Connection refused"


def test_tcp_send_and_expect(servers: list[Any]) -> None:
    def pong(conn: socket.socket) -> None:
        if conn.recv(100) == b"PING\r\n":
            conn.sendall(b"+PONG\r\n")

    server = TcpServer(pong)
    servers.append(server)
    assert check_tcp(["127.0.0.1"], server.port, 2, b"PING\r\n", r"\+PONG").failed == []
    result = check_tcp(["127.0.0.1"], server.port, 2, b"PING\r\n", r"\+OK")
    assert result.failed == ["127.0.0.1"]
    assert "closed without answering /\\+OK/: got b'+PONG\\r\\n'" in result.detail


def test_tcp_as_a_mon_monitor(servers: list[Any]) -> None:
    server = TcpServer()
    servers.append(server)
    closed = free_port()
    command = [sys.executable, "-m", "hastack.mon.builtin.monitors", "tcp", "-t", "2", "-p"]
    up = subprocess.run([*command, str(server.port), "127.0.0.1"], capture_output=True, text=True)
    assert (up.returncode, up.stdout) == (0, "\n")
    down = subprocess.run(
        [*command, str(closed), "127.0.0.1", "localhost"], capture_output=True, text=True
    )
    assert down.returncode == 1
    lines = down.stdout.split("\n")
    assert lines[0] == "127.0.0.1 localhost"  # tcp.monitor's: failed hosts, sorted
    assert lines[1] == ""
    assert "127.0.0.1 could not connect: Connection refused" in lines[2:]


# ------------------------------------------------------------------ http


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/":
            body = b"<html>all systems go</html>"
            self.send_response(200)
        else:
            body = b"nothing here"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Agent", self.headers.get("User-Agent", ""))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpServer:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_http(servers: list[Any]) -> None:
    server = HttpServer()
    servers.append(server)
    ok = check_http(["127.0.0.1"], server.port, "/", timeout=5, match="systems go")
    assert ok.failed == []
    assert ok.detail.startswith("HOST 127.0.0.1: ok\nHTTP/1.0 200 OK\r\n")
    assert "X-Agent: mon.d/http.monitor" in ok.detail
    missing = check_http(["127.0.0.1"], server.port, "/gone", timeout=5)
    assert missing.failed == ["127.0.0.1"]
    assert missing.detail.startswith("HOST 127.0.0.1: HTTP response code failure\nHTTP/1.0 404")
    nomatch = check_http(["127.0.0.1"], server.port, "/", timeout=5, match="on fire")
    assert "HOST 127.0.0.1: Regex match failed" in nomatch.detail
    # the regex sees the headers too, as http.monitor's
    assert check_http(["127.0.0.1"], server.port, "/", 5, match="X-Agent: mon").failed == []
    refused = check_http(["127.0.0.1"], free_port(), "/", timeout=5)
    assert refused.detail == "HOST 127.0.0.1: Connection refused\n"
    with pytest.raises(MonitorError, match="-m '\\(': not a regular expression"):
        check_http(["127.0.0.1"], server.port, match="(")


# ------------------------------------------------------------------ smtp


def banner(lines: bytes) -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        conn.sendall(lines)
        if conn.recv(100).startswith(b"QUIT"):
            conn.sendall(b"221 bye\r\n")

    return serve


def test_smtp(servers: list[Any]) -> None:
    good = TcpServer(banner(b"220-mail.test welcome\r\n220 ESMTP ready\r\n"))
    bad = TcpServer(banner(b"554 go away\r\n"))
    servers += [good, bad]
    result = check_smtp(["127.0.0.1"], good.port, timeout=2)
    assert result.failed == []
    assert result.detail.endswith("220-mail.test welcome\r\n220 ESMTP ready\r\n221 bye\r\n")
    result = check_smtp(["127.0.0.1"], bad.port, timeout=2)
    assert result.failed == ["127.0.0.1"]
    assert result.detail.startswith("127.0.0.1 failed with error did not receive 220 greeting")
    assert "554 go away" in result.detail


# ------------------------------------------------------------------ dns


class DnsResponder:
    """Answers A queries for good.test with 192.0.2.7, anything else with NXDOMAIN."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.questions: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            if len(query) < 12:
                return  # shut down
            query_id, _flags = struct.unpack_from("!HH", query)
            end = query.index(b"\0", 12) + 5
            question = query[12:end]
            self.questions.append(question)
            if question[:-4] == b"\x04good\x04test\x00":
                answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
                header = struct.pack("!HHHHHH", query_id, 0x8180, 1, 1, 0, 0)
                self.sock.sendto(header + question + answer, peer)
            else:
                header = struct.pack("!HHHHHH", query_id, 0x8183, 1, 0, 0, 0)
                self.sock.sendto(header + question, peer)

    def close(self) -> None:
        stop(self.sock)
        self.thread.join(5)


def test_dns(servers: list[Any]) -> None:
    responder = DnsResponder()
    servers.append(responder)
    ok = check_dns(["127.0.0.1"], "good.test", port=responder.port, timeout=2)
    assert ok.failed == []
    assert "127.0.0.1: successful lookup for good.test IN A 192.0.2.7" in ok.detail
    # the query the responder got: good.test, type A, class IN
    assert responder.questions[0] == b"\x04good\x04test\x00\x00\x01\x00\x01"
    bad = check_dns(["127.0.0.1"], "bad.test", port=responder.port, timeout=2)
    assert bad.failed == ["127.0.0.1"]
    assert "127.0.0.1: NXDOMAIN (bad.test)" in bad.detail
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    with silent:
        quiet = check_dns(["127.0.0.1"], "good.test", port=silent.getsockname()[1], timeout=0.3)
    assert quiet.failed == ["127.0.0.1"] and "timeout" in quiet.detail


# ------------------------------------------------------------------ ping


def test_ping_localhost() -> None:
    if os.geteuid() != 0:
        reason = "ICMP needs root here (a raw socket)"
        try:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        except OSError:
            print(f"skipped: {reason}")
            pytest.skip(reason)
    assert check_ping(["127.0.0.1"], count=1, timeout=2).failed == []
    # Broadcast is refused without SO_BROADCAST: the echo cannot even be sent.
    result = check_ping(["127.0.0.1", "255.255.255.255", "nowhere.invalid"], 1, timeout=0.5)
    assert result.failed == ["255.255.255.255", "nowhere.invalid"]
    assert "nowhere.invalid: could not resolve" in result.detail
    assert "255.255.255.255: cannot send: Permission denied" in result.detail
    assert "255.255.255.255: no echo reply within 0.5 s" in result.detail


# ------------------------------------------------------------------ freespace, processes, files


def test_freespace(tmp_path: Path) -> None:
    assert check_freespace([f"{tmp_path}:1", f"{tmp_path}:1%"]).failed == []
    result = check_freespace([f"{tmp_path}:1000000T", "/no/such/dir:1"])
    assert result.failed == ["/no/such/dir", str(tmp_path)]
    assert f"{tmp_path}: " in result.detail and "less than 1000000T" in result.detail
    with pytest.raises(MonitorError, match="expected PATH:MIN"):
        check_freespace([f"{tmp_path}:lots"])


def test_processes() -> None:
    sleeper = subprocess.Popen(["sleep", "30.25"])
    try:
        result = check_processes(["sleep", "no-such-process-hastack"])
        assert result.failed == ["no-such-process-hastack"]
        assert f"{sleeper.pid}" in result.detail
        assert check_processes([r"sleep 30\.25"], full=True).failed == []
        # the monitor's own command line (which holds the pattern) does not count
        assert check_processes([r"sleep 99\.75"], full=True).failed == [r"sleep 99\.75"]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert check_processes([r"sleep 30\.25"], full=True).failed == [r"sleep 30\.25"]


def test_filechange(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    fresh.write_text("x")
    old.write_text("y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    changed = check_filechange([str(fresh), str(old), str(tmp_path / "gone")], 60)
    assert changed.failed == sorted([str(fresh), str(tmp_path / "gone")])
    stale = check_filechange([str(fresh), str(old)], 60, stale=True)
    assert stale.failed == [str(old)]
    assert "not within 60 s" in stale.detail


def test_output_convention() -> None:
    from hastack.mon.builtin.monitors import Result

    assert format_output(Result(["a", "b"], "a b", "a down\nb down")) == "a b\n\na down\nb down\n"
    assert format_output(Result([], "", "")) == "\n"


# ------------------------------------------------------------------ install_scripts


def test_install_scripts(tmp_path: Path, servers: list[Any]) -> None:
    mondir, alertdir = tmp_path / "mon.d", tmp_path / "alert.d"
    mondir.mkdir()
    alertdir.mkdir()
    written = install_scripts(mondir, alertdir)
    names = {path.name for path in written}
    assert {"hastack-tcp.monitor", "hastack-ping.monitor", "hastack-cluster.alert"} <= names
    assert all(os.stat(path).st_mode & 0o777 == 0o755 for path in written)
    server = TcpServer()
    servers.append(server)
    run = subprocess.run(
        [mondir / "hastack-tcp.monitor", "-p", str(server.port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (run.returncode, run.stdout) == (0, "\n")
    assert install_scripts(mondir, alertdir) == written  # ours are replaced
    (alertdir / "hastack-mail.alert").write_text("#!/bin/sh\n# the admin's own\n")
    with pytest.raises(InstallError, match=r"hastack-mail\.alert exists and was not written"):
        install_scripts(mondir, alertdir)
    assert (alertdir / "hastack-mail.alert").read_text() == "#!/bin/sh\n# the admin's own\n"


# ------------------------------------------------------------------ alerts

MON_ARGV = ["-s", "http", "-g", "web farm", "-h", "web1 web2", "-t", "1700000000"]
OUTPUT = "web1 web2\nweb1: refused\nweb2: timeout\n"
ENV = {
    "MON_ALERTTYPE": "failure",
    "MON_OPSTATUS": "0",
    "MON_RETVAL": "1",
    "MON_DESCRIPTION": "the web servers",
    "MON_GROUP": "web farm",
    "MON_SERVICE": "http",
    "TZ": "UTC",
}


def run_alert(argv: list[str], output: str = OUTPUT, env: dict[str, str] | None = None) -> int:
    return alerts_mod.main(argv, io.StringIO(output), dict(ENV if env is None else env))


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The alerts print local time: make it UTC for the test, and put it back after."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("utc")
def test_file_alert(tmp_path: Path) -> None:
    log = tmp_path / "alerts.log"
    assert run_alert(["file", *MON_ARGV, str(log)]) == 0
    assert run_alert(["file", *MON_ARGV, "-u", "-S", "all well", str(log)], "ok\n") == 0
    expected_first = (
        "failure web farm http 1700000000 (Tue Nov 14 22:13:20) web1 web2\n"
        "DESCR=the web servers\nOPSTATUS=0\nweb1: refused\nweb2: timeout\n.\n"
    )
    assert log.read_text().startswith(expected_first)
    assert log.read_text().endswith(
        "(Tue Nov 14 22:13:20) all well\nDESCR=the web servers\nOPSTATUS=0\n.\n"
    )


def test_file_alert_matches_debian(tmp_path: Path) -> None:
    debian = Path("/usr/lib/mon/alert.d/file.alert")
    if not debian.exists() or shutil.which("perl") is None:
        reason = f"{debian} (Debian package mon) is not installed"
        print(f"skipped: {reason}")
        pytest.skip(reason)
    env = {**ENV, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    subprocess.run([debian, *MON_ARGV, str(theirs)], input=OUTPUT, text=True, env=env, check=True)
    wrapper = [sys.executable, "-m", "hastack.mon.builtin.alerts", "file", *MON_ARGV, str(ours)]
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    subprocess.run(wrapper, input=OUTPUT, text=True, env=env, check=True)
    assert ours.read_text() == theirs.read_text()


@pytest.mark.usefixtures("utc")
def test_mail_alert(tmp_path: Path) -> None:
    out = tmp_path / "message"
    command = f"tee {shlex.quote(str(out))}"
    argv = ["mail", *MON_ARGV, "--command", command, "-f", "mon@example.org", "ops@example.org"]
    assert run_alert(argv) == 0
    message = out.read_text()
    assert "To: ops@example.org\n" in message
    assert "From: mon@example.org\n" in message
    assert "Subject: ALERT web farm/http: web1 web2 (Tue Nov 14 22:13:20)\n" in message
    assert "Members               : web1 web2\n" in message
    assert message.endswith("-------------------------------\nweb1: refused\nweb2: timeout\n")
    assert run_alert([*argv[:-1], "-u", "ops@example.org"], "all ok\n") == 0
    assert "Subject: UPALERT web farm/http: all ok" in out.read_text()


def test_mail_alert_failing_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_alert(["mail", *MON_ARGV, "--command", "false", "ops@example.org"]) == 1
    assert "--command 'false' exited 1" in capsys.readouterr().err
    assert run_alert(["mail", *MON_ARGV, "--command", "/no/sendmail", "a@b"]) == 1
    assert "/no/sendmail not found" in capsys.readouterr().err


def test_trap_alert() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = str(receiver.getsockname()[1])
    with receiver:
        argv = ["trap", *MON_ARGV, "--server", "127.0.0.1", "--port", port, "-U", "bob"]
        assert run_alert([*argv, "-P", "pw"]) == 0
        trap = decode_trap(receiver.recv(65536))
        assert (trap.grp, trap.svc, trap.sta, trap.spc) == ("web farm", "http", 1, 0)
        assert (trap.sum, trap.dtl) == ("web1 web2", "web1: refused\nweb2: timeout")
        assert (trap.usr, trap.pas) == ("bob", "pw")
        assert trap.tsp is not None and abs(trap.tsp - time.time()) < 60
        up_env = {**ENV, "MON_RETVAL": "0", "MON_OPSTATUS": "1", "MON_ALERTTYPE": "up"}
        assert run_alert([*argv, "-u"], "web1 web2\n", up_env) == 0
        up = decode_trap(receiver.recv(65536))
        assert (up.sta, up.spc, up.dtl) == (0, 1, "")


# ------------------------------------------------------------------ the cluster alert


class FakeControl:
    """A node daemon's control socket: records each request, answers `reply`."""

    def __init__(self, path: Path, reply: dict[str, Any]) -> None:
        self.path = path
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with unix_address(path) as address:
            self.sock.bind(address)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline()
                self.requests.append(json.loads(line))
                conn.sendall(json.dumps(self.reply).encode() + b"\n")

    def close(self) -> None:
        stop(self.sock)
        self.thread.join(5)
        self.path.unlink(missing_ok=True)


@pytest.fixture
def control(tmp_path: Path, servers: list[Any]) -> FakeControl:
    fake = FakeControl(tmp_path / "control.sock", {"summary": "done", "epoch": [0, 5, 1]})
    servers.append(fake)
    return fake


def cluster(control: FakeControl, *args: str, kind: str | None = None) -> int:
    argv = ["cluster", *MON_ARGV, *([kind] if kind else []), "--socket", str(control.path)]
    return run_alert([*argv, "--node", "n1", *args])


def test_cluster_standby(control: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    assert cluster(control, "--standby") == 0
    assert capsys.readouterr().out == "done (version 0.5.1)\n"
    assert cluster(control, "--standby", kind="-u") == 0  # upalert: nothing by default
    assert cluster(control, "--standby", kind="-a") == 0  # ack: nothing
    assert cluster(control, "--standby", "--on-recovery", "clear", kind="-u") == 0
    assert control.requests == [
        {
            "cmd": "cib-apply",
            "operation": {"op": "node-standby", "node": "n1", "lifetime": "forever"},
        },
        {"cmd": "cib-apply", "operation": {"op": "node-unstandby", "node": "n1"}},
    ]


def test_cluster_move_and_takeover(control: FakeControl) -> None:
    assert cluster(control, "--move", "web", "--to", "n2") == 0
    assert cluster(control, "--move", "web", "--on-recovery", "clear", kind="-u") == 0
    assert cluster(control, "--takeover", kind="-T") == 0  # a trap alert acts
    assert cluster(control, "--takeover", "local", "--on-recovery", "clear", kind="-u") == 0
    assert [request["operation"] for request in control.requests] == [
        {"op": "resource-move", "resource": "web", "node": "n2"},
        {"op": "resource-clear", "resource": "web"},
        {"op": "takeover", "node": "n1", "which": "all"},
    ]
    assert {request["cmd"] for request in control.requests} == {"cib-apply"}


def test_cluster_refused(
    tmp_path: Path, servers: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeControl(tmp_path / "c.sock", {"error": "node n1 is not in the cluster"})
    servers.append(fake)
    assert cluster(fake, "--standby") == 1
    assert "hastack cluster alert: node n1 is not in the cluster" in capsys.readouterr().err
    fake.close()
    assert cluster(fake, "--standby") == 1
    assert "the node daemon is not running" in capsys.readouterr().err
