"""`hastack mon serve` for real: the server as a process on 127.0.0.1 (free ports), the seed's
two configurations against a TCP listener the test stops and starts, Debian's moncmd and Perl
Mon::Client (list, disable, enable, ack, test, a trap) against it, reloads and a clean stop.
The mon.cf texts are the seed's, with its hosts, intervals and scripts made local: fping.monitor
and ping.monitor are hastack's tcp monitor on the test's listener, ftp.monitor Debian's
tcp.monitor, and mail.alert a script that records its arguments and input."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from hastack.mon.builtin import install_scripts
from hastack.mon.client import MonClient
from hastack.mon.protocol import parse_opstatus_lines

NEEDS_ROOT = False  # processes and loopback sockets only
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
MONCMD = shutil.which("moncmd")
DEBIAN_TCP_MONITOR = Path("/usr/lib/mon/mon.d/tcp.monitor")

AUTH = """\
command section
list: all
protid: all
quit: all
servertime: all
version: all
test: all
ack: all
disable: all
enable: all
reset: all
reload: all
term: all
savestate: all
loadstate: all
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def wait_for(what: str, condition: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Listener:
    """A TCP service the test stops and starts (the monitored "web server")."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(5)


@dataclass
class Mon:
    base: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    listeners: list[Listener] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.base / "mon.cf"

    @property
    def mails(self) -> Path:
        return self.base / "mails"

    def write(self, body: str) -> None:
        header = textwrap.dedent(
            f"""\
            serverport = {self.port}
            trapport = {self.port}
            cfbasedir = {self.base}
            mondir = {self.base}/mon.d
            alertdir = {self.base}/alert.d
            statedir = {self.base}/state
            logdir = {self.base}/log
            """
        )
        self.conf.write_text(header + "\n" + textwrap.dedent(body))

    def start(self) -> None:
        with (self.base / "server.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hastack", "mon", "serve", "-c", str(self.conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ENV,
            )
        wait_for("the server's port", self._answers)

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited: {self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5):
                return True
        except OSError:
            return False

    def log(self) -> str:
        return (self.base / "server.log").read_text()

    def opstatus(self) -> dict[tuple[str, str], dict[str, str]]:
        with MonClient("127.0.0.1", self.port) as client:
            return parse_opstatus_lines(client.command("list opstatus"))

    def status_of(self, group: str, service: str) -> str:
        return self.opstatus()[(group, service)].get("opstatus", "")

    def mail_lines(self) -> list[str]:
        return self.mails.read_text().splitlines() if self.mails.exists() else []

    def moncmd(self, *commands: str) -> subprocess.CompletedProcess[str]:
        assert MONCMD is not None
        return subprocess.run(
            [MONCMD, "-s", "127.0.0.1", "-p", str(self.port), *commands],
            capture_output=True,
            text=True,
            timeout=30,
        )


@pytest.fixture
def mon(tmp_path: Path) -> Iterator[Mon]:
    for name in ("mon.d", "alert.d", "state", "log"):
        (tmp_path / name).mkdir()
    install_scripts(tmp_path / "mon.d", tmp_path / "alert.d")
    made = Mon(tmp_path, free_port())
    # mail.alert: records its arguments (one line) and its input (indented) for the test
    mail = tmp_path / "alert.d" / "mail.alert"
    mail.write_text(
        f'#!/bin/sh\necho "ARGS $*" >> "{made.mails}"\nsed "s/^/  /" >> "{made.mails}"\n'
    )
    mail.chmod(0o755)
    (tmp_path / "auth.cf").write_text(AUTH)
    try:
        yield made
    finally:
        if made.proc is not None and made.proc.poll() is None:
            made.proc.send_signal(signal.SIGTERM)
            try:
                made.proc.wait(20)
            except subprocess.TimeoutExpired:
                made.proc.kill()
                made.proc.wait()
        for listener in made.listeners:
            listener.stop()


def tcp_monitor(mon: Mon, name: str, port: int) -> None:
    """`name` in mondir: hastack's tcp monitor on `port` (a stand-in for fping/ping)."""
    script = mon.base / "mon.d" / name
    script.write_text(f'#!/bin/sh\nexec "{mon.base}/mon.d/hastack-tcp.monitor" -p {port} "$@"\n')
    script.chmod(0o755)


def test_seed_configuration_1_alerts_once_then_upalerts_when_the_service_returns(
    mon: Mon,
) -> None:
    """The seed's first example: mail when the servers become unreachable, at most every
    24 h, and an upalert when they return."""
    port = free_port()
    listener = Listener(port)
    mon.listeners.append(listener)
    listener.start()
    tcp_monitor(mon, "fping.monitor", port)
    mon.write(
        """\
        hostgroup servers 127.0.0.1

        watch servers
        service fping
        monitor fping.monitor
        interval 1s
        period wd {Sun-Sat}
        alert mail.alert myemail
        alertevery 24h
        upalert mail.alert myemail
        """
    )
    mon.start()
    wait_for("a first good check", lambda: mon.status_of("servers", "fping") == "1")
    listener.stop()
    wait_for("the alert", lambda: any("ARGS" in line for line in mon.mail_lines()))
    time.sleep(3)  # three more failing checks: alertevery 24h keeps them quiet
    alerts = [line for line in mon.mail_lines() if line.startswith("ARGS")]
    assert alerts == [alerts[0]] and "-s fping -g servers -h 127.0.0.1" in alerts[0]
    assert alerts[0].endswith(" myemail") and " -u " not in alerts[0]
    assert mon.status_of("servers", "fping") == "0"
    listener.start()
    wait_for("the upalert", lambda: any(" -u " in line for line in mon.mail_lines()))
    assert mon.status_of("servers", "fping") == "1"


def test_seed_configuration_2_periods_alertafter_and_the_dependency(mon: Mon) -> None:
    """The seed's second example: three periods for ping (label2 waits for 5 failures within
    10 minutes), and ftp depending on ping (its alerts are held while ping fails)."""
    if not DEBIAN_TCP_MONITOR.exists():
        pytest.skip(f"{DEBIAN_TCP_MONITOR} missing: install Debian's mon package")
    ping_port, ftp_port = free_port(), free_port()
    ping, ftp = Listener(ping_port), Listener(ftp_port)
    mon.listeners += [ping, ftp]
    ping.start()
    ftp.start()
    tcp_monitor(mon, "ping.monitor", ping_port)
    ftp_monitor = mon.base / "mon.d" / "ftp.monitor"  # Debian's tcp.monitor, unchanged
    ftp_monitor.write_text(f'#!/bin/sh\nexec "{DEBIAN_TCP_MONITOR}" -p {ftp_port} "$@"\n')
    ftp_monitor.chmod(0o755)
    mon.write(
        """\
        hostgroup serverfoo 127.0.0.1

        watch serverfoo
            service ping
                monitor ping.monitor
                interval 1s
                period label1: wd {Sun-Sat}
                     alert mail.alert myemail
                     alertevery 12h
                     upalert mail.alert myemail
                period label2: wd {Sun-Sat}
                     alert mail.alert myspecialemail
                     alertevery 24h
                     alertafter 5 10m
                period label3: wd {Mon-Fri} hr {9am-6pm}
                     alert mail.alert staffemail
                     alertevery 4h
            service ftp
                monitor ftp.monitor
                interval 1s
                depend SELF:ping
                period wd {Sun-Sat}
                     alert mail.alert myemail
                     alertafter 10m
                     numalerts 2
        """
    )
    mon.start()
    wait_for(
        "both services checked",
        lambda: all(s.get("opstatus") == "1" for s in mon.opstatus().values()),
    )
    failing_since = datetime.now()
    ping.stop()
    ftp.stop()
    wait_for("label1's alert", lambda: any(line.endswith(" myemail") for line in mon.mail_lines()))
    assert not any(line.endswith(" myspecialemail") for line in mon.mail_lines())  # not yet 5
    wait_for(
        "label2's alert after 5 failures",
        lambda: any(line.endswith(" myspecialemail") for line in mon.mail_lines()),
        timeout=30,
    )
    ping_alerts = [line for line in mon.mail_lines() if "-s ping" in line]
    assert len([line for line in ping_alerts if line.endswith(" myemail")]) == 1  # alertevery

    # staffemail only on weekdays 9am-6pm (period label3), as the seed says; Time::Period's
    # ranges include their last value, so `hr {9am-6pm}` runs to 18:59:59.
    def office(when: datetime) -> bool:
        return when.weekday() < 5 and 9 <= when.hour <= 18

    if office(failing_since) == office(datetime.now()):
        assert any(line.endswith(" staffemail") for line in ping_alerts) == office(failing_since)
    else:
        print("staffemail not checked: the run crossed the edge of period label3")
    # ftp failed too, but it depends on ping: no ftp alert (and alertafter 10m besides)
    assert not any("-s ftp" in line for line in mon.mail_lines())
    assert mon.status_of("serverfoo", "ftp") == "0"


@pytest.mark.skipif(MONCMD is None, reason="moncmd missing: install Debian's mon-client")
def test_moncmd_lists_disables_enables_acks_and_tests(mon: Mon) -> None:
    tcp_monitor(mon, "web.monitor", free_port())  # nothing listens: it fails
    mon.write(
        """\
        hostgroup web 127.0.0.1

        watch web
            service http
                monitor web.monitor
                interval 1s
                period wd {Sun-Sat}
                    alert mail.alert ops
        """
    )
    mon.start()
    wait_for("the failure", lambda: mon.status_of("web", "http") == "0")
    listed = mon.moncmd("list opstatus")
    assert listed.returncode == 0 and "group=web service=http opstatus=0" in listed.stdout
    assert mon.moncmd("disable service web http").returncode == 0
    assert "watch web service http" in mon.moncmd("list disabled").stdout
    assert mon.opstatus()[("web", "http")]  # still listed while disabled
    assert mon.moncmd("enable service web http").returncode == 0
    assert "watch web service http" not in mon.moncmd("list disabled").stdout
    acked = mon.moncmd('ack web http "looking at it"')  # mon takes one (quoted) word
    assert acked.returncode == 0, acked.stderr
    assert "looking at it" in mon.opstatus()[("web", "http")]["ackcomment"]
    before = float(mon.opstatus()[("web", "http")]["last_check"])
    assert mon.moncmd("test monitor web http").returncode == 0
    wait_for(
        "the forced run", lambda: float(mon.opstatus()[("web", "http")]["last_check"]) > before
    )


def test_a_trap_from_mon_client_reaches_its_service(mon: Mon) -> None:
    if subprocess.run(["perl", "-MMon::Client", "-e", "1"], capture_output=True).returncode:
        pytest.skip("Perl Mon::Client missing: install Debian's mon-client")
    mon.write(
        """\
        hostgroup app 127.0.0.1

        watch app
            service backup
                period wd {Sun-Sat}
                    alert mail.alert backups
        """
    )
    (mon.base / "auth.cf").write_text(AUTH + "trap section\n127.0.0.1 * *\n")
    mon.start()
    perl = textwrap.dedent(
        f"""\
        use Mon::Client;
        my $c = new Mon::Client(host => "127.0.0.1", port => {mon.port});
        $c->send_trap(group => "app", service => "backup", retval => 1,
                      opstatus => "fail", summary => "nightly backup failed",
                      detail => "tar: exit 2\\n") or die $c->error;
        """
    )
    sent = subprocess.run(["perl", "-e", perl], capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    wait_for("the trap's alert", lambda: any("ARGS" in line for line in mon.mail_lines()))
    status = mon.opstatus()[("app", "backup")]
    assert status["opstatus"] == "0" and status["last_summary"] == "nightly backup failed"
    assert "-s backup -g app" in mon.mail_lines()[0] and " -T " in mon.mail_lines()[0]
    assert "tar: exit 2" in "\n".join(mon.mail_lines())
    # a server with nothing to schedule (trap-only) stops at once on SIGTERM too
    assert mon.proc is not None
    mon.proc.send_signal(signal.SIGTERM)
    assert mon.proc.wait(10) == 0


def test_a_bad_reload_keeps_the_running_configuration_and_sigterm_stops_cleanly(
    mon: Mon,
) -> None:
    mon.write(
        """\
        hostgroup web 127.0.0.1

        watch web
            service http
                monitor hastack-tcp.monitor -p 9
                interval 1s
        """
    )
    mon.start()
    good = mon.conf.read_text()
    mon.conf.write_text(good + "\nintervall = 3\n")
    assert mon.proc is not None
    mon.proc.send_signal(signal.SIGHUP)
    wait_for("the refusal", lambda: "reset refused" in mon.log())
    assert mon.conf.name in mon.log() and ("web", "http") in mon.opstatus()
    mon.conf.write_text(good.replace("service http", "service https"))
    mon.proc.send_signal(signal.SIGHUP)
    wait_for("the new service", lambda: ("web", "https") in mon.opstatus())
    mon.proc.send_signal(signal.SIGTERM)
    assert mon.proc.wait(20) == 0
    assert "stopped" in mon.log()


def test_without_an_authfile_the_server_says_so_and_does_not_start(mon: Mon) -> None:
    (mon.base / "auth.cf").unlink()
    mon.write(
        "hostgroup web 127.0.0.1\n\nwatch web\n    service http\n        interval 1s\n"
        "        monitor hastack-tcp.monitor\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "hastack", "mon", "serve", "-c", str(mon.conf)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert out.returncode == 1
    assert f"authfile {mon.base / 'auth.cf'} does not exist" in out.stderr


def test_hastack_mon_status_and_client(mon: Mon) -> None:
    tcp_monitor(mon, "web.monitor", free_port())
    mon.write(
        """\
        hostgroup web 127.0.0.1

        watch web
            service http
                monitor web.monitor
                interval 1s
        """
    )
    mon.start()
    wait_for("the failure", lambda: mon.status_of("web", "http") == "0")
    status = subprocess.run(
        [sys.executable, "-m", "hastack", "mon", "status", "-p", str(mon.port), "--json"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert status.returncode == 1  # a service fails
    import json

    rows = json.loads(status.stdout)["services"]
    assert rows[0]["group"] == "web" and rows[0]["status"] == "FAIL"
    client = subprocess.run(
        [
            sys.executable,
            "-m",
            "hastack",
            "mon",
            "client",
            "-p",
            str(mon.port),
            "disable watch web",
            "list disabled",
            "enable watch web",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert client.returncode == 0, client.stderr
    assert "watch web" in client.stdout
