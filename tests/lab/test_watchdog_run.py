"""`hastack watchdog run` for real: the daemon as a process, a stand-in device (a FIFO read as
a driver would, hastack.lab.watchdog), real pidfiles, files, test and repair binaries. Every
reboot, reset and power-off command is a script that records its call: nothing here can take
the machine down."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from hastack.lab.watchdog import StandInWatchdog

NEEDS_ROOT = False  # real processes and files, no namespaces: runs anywhere

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
DEVICE_TIMEOUT = 3  # the stand-in fires this long after the last keep-alive


def wait_for(what: str, condition: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Running (a zombie is dead: killed, waiting for its parent to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


@dataclass
class Rig:
    tmp: Path
    device: StandInWatchdog
    conf: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def actions(self) -> Path:
        return self.tmp / "actions"

    def start(self, *flags: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hastack", "watchdog", "run", "-c", str(self.conf), *flags],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ENV,
            )
        return self.proc

    def log_text(self) -> str:
        return self.log.read_text()

    def status(self) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-m", "hastack", "watchdog", "status", "-c", str(self.conf), "--json"],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=30,
        )
        return json.loads(out.stdout)

    def last_reset(self) -> dict[str, object]:
        return json.loads((self.tmp / "state" / "last-reset.json").read_text())

    def background(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv)
        self.started.append(proc)
        return proc

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[[str], Rig]]:
    rigs: list[Rig] = []

    def make(extra: str) -> Rig:
        fired: list[float] = []
        device = StandInWatchdog(tmp_path / "watchdog", DEVICE_TIMEOUT, lambda: fired.append(1))
        device.start()
        for name in ("reboot", "reset", "poweroff"):
            script(tmp_path / f"{name}.sh", f'echo {name} >> "{tmp_path}/actions"\n')
        script(
            tmp_path / "notify.sh",
            f'env | grep ^WATCHDOG_ > "{tmp_path}/notified"\ncat >> "{tmp_path}/notified"\n',
        )
        conf = tmp_path / "watchdog.conf"
        conf.write_text(
            textwrap.dedent(
                f"""\
                watchdog-device = {tmp_path / "watchdog"}
                watchdog-timeout = {DEVICE_TIMEOUT}
                interval = 1
                log-dir = {tmp_path / "log"}
                state-dir = {tmp_path / "state"}
                reboot-command = {tmp_path / "reboot.sh"}
                reset-command = {tmp_path / "reset.sh"}
                poweroff-command = {tmp_path / "poweroff.sh"}
                notify-command = {tmp_path / "notify.sh"}
                """
            )
            + textwrap.dedent(extra)
        )
        made = Rig(tmp_path, device, conf, tmp_path / "daemon.log")
        rigs.append(made)
        return made

    yield make
    for made in rigs:
        if made.proc is not None and made.proc.poll() is None:
            made.proc.send_signal(signal.SIGTERM)  # a clean stop also ends its test binaries
            try:
                made.proc.wait(20)
            except subprocess.TimeoutExpired:
                made.proc.kill()
                made.proc.wait()
        for proc in made.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        made.device.close()


def went_down(rig: Rig, check: str, code: int, timeout: float = 20) -> dict[str, object]:
    """The daemon acted on `check` with `code`: the reboot command ran, the log says why,
    keep-alives stopped and the stand-in device fired. The recorded reason, for more checks."""
    wait_for("the reboot command", rig.actions.exists, timeout=timeout)
    reset = rig.last_reset()
    assert (reset["check"], reset["code"]) == (check, code), reset
    wait_for("the stand-in to fire", lambda: rig.device.fired, timeout=DEVICE_TIMEOUT + 5)
    assert rig.device.last_keepalive is not None
    assert rig.device.times("fired")[0] - rig.device.last_keepalive >= DEVICE_TIMEOUT
    log = rig.log_text()
    assert f"reboot: {check} " in log and "keep-alives stopped for good" in log, log
    return reset


def fed(rig: Rig, count: int = 2) -> None:
    base = rig.device.keepalives
    wait_for(f"{count} keep-alives", lambda: rig.device.keepalives >= base + count)


def test_the_device_is_fed_every_interval_and_a_clean_stop_disarms_it(rig) -> None:
    r = rig("")
    r.start()
    fed(r, 3)
    assert r.stop() == 0
    wait_for("the stand-in to see the magic close", lambda: r.device.times("disarmed"))
    time.sleep(DEVICE_TIMEOUT + 0.5)
    assert not r.device.fired
    status = r.status()
    assert status["running"] is False


def test_a_killed_daemon_leaves_the_device_armed_and_it_fires(rig) -> None:
    r = rig("")
    proc = r.start()
    fed(r)
    proc.kill()
    proc.wait()
    wait_for("the stand-in to fire", lambda: r.device.fired, timeout=DEVICE_TIMEOUT + 5)
    assert not r.device.times("disarmed")


def test_a_dead_pidfile_process_is_repaired_with_its_errno_and_object_then_reboots(
    rig, tmp_path: Path
) -> None:
    server = subprocess.Popen(["sleep", "1000"])
    pidfile = tmp_path / "server.pid"
    pidfile.write_text(f"{server.pid}\n")
    repair = script(tmp_path / "repair.sh", f'echo "$@" >> "{tmp_path}/repair-args"\nexit 3\n')
    r = rig(f"pidfile = {pidfile}\nretry-timeout = 1\nrepair-binary = {repair}\n")
    r.started.append(server)
    r.start()
    fed(r)
    assert not r.actions.exists()
    server.kill()
    server.wait()
    wait_for("the reboot command", r.actions.exists)
    assert (tmp_path / "repair-args").read_text().split() == ["3", str(pidfile)]  # ESRCH
    assert r.actions.read_text().split() == ["reboot"]
    wait_for("the stand-in to fire", lambda: r.device.fired, timeout=DEVICE_TIMEOUT + 5)
    reset = r.last_reset()
    assert (reset["check"], reset["object"], reset["code"]) == ("pidfile", str(pidfile), 3)
    notified = (tmp_path / "notified").read_text()
    assert "WATCHDOG_ACTION=reboot" in notified and str(pidfile) in notified
    log = r.log_text()
    assert "repairing pidfile" in log and "keep-alives stopped for good" in log


def test_a_repair_that_works_keeps_the_machine_up(rig, tmp_path: Path) -> None:
    server = subprocess.Popen(["sleep", "1000"])
    pidfile = tmp_path / "server.pid"
    pidfile.write_text(f"{server.pid}\n")
    # The repair starts the service again, as an operator's script would.
    repair = script(
        tmp_path / "repair.sh",
        f'sleep 1000 >/dev/null 2>&1 &\necho $! > "{pidfile}"\necho "$@" >> "{tmp_path}/args"\n',
    )
    r = rig(f"pidfile = {pidfile}\nretry-timeout = 0\nrepair-binary = {repair}\n")
    r.started.append(server)
    r.start()
    fed(r)
    server.kill()
    server.wait()
    wait_for("the repair", (tmp_path / "args").exists)
    restarted = int(pidfile.read_text())
    try:
        fed(r, 3)
        assert not r.actions.exists() and not r.device.fired
        checks = {c["object"]: c for c in r.status()["checks"]}
        wait_for(
            "the pidfile check to pass again",
            lambda: not {c["object"]: c for c in r.status()["checks"]}[str(pidfile)]["code"],
        )
        assert checks[str(pidfile)]["check"] == "pidfile"
    finally:
        os.kill(restarted, signal.SIGKILL)
    assert r.stop() == 0


def test_a_file_that_stops_changing_reboots_the_machine(rig, tmp_path: Path) -> None:
    watched = tmp_path / "heartbeat"
    watched.touch()
    r = rig(f"file = {watched}\nchange = 2\nretry-timeout = 0\n")
    r.start()
    for _ in range(10):  # changed every 0.3 s: fine
        time.sleep(0.3)
        watched.touch()
    assert not r.actions.exists()
    assert went_down(r, "file", 250)["object"] == str(watched)


def test_a_hanging_test_binary_is_killed_with_its_children_at_its_timeout(
    rig, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    hang = script(tmp_path / "hang.sh", f'sleep 1000 &\necho $$ $! > "{pids}"\nwait\n')
    r = rig(f"test-binary = {hang}\ntest-timeout = 2\nretry-timeout = 0\n")
    r.start()
    wait_for("the test binary to start", lambda: pids.exists() and pids.read_text().strip())
    shell, child = (int(word) for word in pids.read_text().split())
    assert went_down(r, "test-binary", 247)["object"] == str(hang)
    for pid in (shell, child):
        wait_for(f"pid {pid} to be killed", lambda pid=pid: not alive(pid))
    # and no new run of it is left behind once the daemon has acted
    runs = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(hang) in " ".join(p.info["cmdline"] or [])
    ]
    assert not [p for p in runs if alive(p.pid)], runs


def test_a_load_spike_made_here_is_acted_on(rig) -> None:
    # Only the 1-minute average: 5.16 derives the 5- and 15-minute limits (3/4 and 1/2 of
    # it), which a busy machine's slower averages may already pass before the spike.
    limit = int(os.getloadavg()[0]) + 3
    r = rig(f"max-load-1 = {limit}\nmax-load-5 = 1000\nmax-load-15 = 1000\nretry-timeout = 0\n")
    r.start("--force")  # a max-load-1 below 5.16's minimum of 2 needs --force
    fed(r)
    hogs = [r.background([sys.executable, "-c", "while True: pass"]) for _ in range(24)]
    try:
        wait_for("the reboot command", r.actions.exists, timeout=60)
    finally:
        for hog in hogs:
            hog.kill()
    went_down(r, "load", 253)


def test_no_action_records_and_tells_but_keeps_feeding(rig, tmp_path: Path) -> None:
    r = rig(f"pidfile = {tmp_path / 'missing.pid'}\nretry-timeout = 0\n")
    r.start("--no-action")
    wait_for("the dry-run record", (tmp_path / "state" / "last-reset.json").exists)
    fed(r, 3)
    assert not r.actions.exists() and not r.device.fired
    reset = r.last_reset()
    assert reset["no_action"] is True and reset["code"] == 2  # ENOENT
    assert "WATCHDOG_DRY_RUN=1" in (tmp_path / "notified").read_text()
    assert "no-action (dry run), would reboot" in r.log_text()
    assert r.stop() == 0


def test_status_shows_the_device_each_check_and_the_last_reset(rig, tmp_path: Path) -> None:
    watched = tmp_path / "exists"
    watched.touch()
    r = rig(f"file = {watched}\n")
    r.start()
    fed(r, 2)
    wait_for("a status file", lambda: (tmp_path / "state" / "status.json").exists())
    status = r.status()
    assert status["running"] is True
    assert status["device"]["armed"] is True and status["device"]["feeding"] is True
    assert time.time() - status["device"]["last_keepalive"] < 3
    assert any(c["object"] == str(watched) and c["code"] == 0 for c in status["checks"])
    text = subprocess.run(
        [sys.executable, "-m", "hastack", "watchdog", "status", "-c", str(r.conf)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    ).stdout
    assert "armed, fed" in text and "last reset: none recorded" in text
    assert r.stop() == 0


def test_a_reset_of_an_earlier_boot_is_reported_once_at_start(rig, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    record = {
        "action": "reboot",
        "code": 250,
        "code_text": "file not changed",
        "check": "file",
        "object": "/var/log/syslog",
        "reason": "not changed in 1407 s",
        "time": time.time() - 600,
        "boot_id": "an-earlier-boot",
        "reported": False,
    }
    (state / "last-reset.json").write_text(json.dumps(record))
    r = rig("")
    r.start()
    fed(r)
    assert "the last reset" in r.log_text() and "/var/log/syslog" in r.log_text()
    assert r.last_reset()["reported"] is True
    assert r.status()["last_reset"]["object"] == "/var/log/syslog"
    assert r.stop() == 0


def test_a_second_daemon_on_the_same_state_is_refused(rig) -> None:
    r = rig("")
    r.start()
    fed(r)
    second = subprocess.run(
        [sys.executable, "-m", "hastack", "watchdog", "run", "-c", str(r.conf)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert second.returncode == 1
    assert "another watchdog daemon" in second.stderr
    assert r.stop() == 0


def test_sighup_is_ignored_not_fatal(rig) -> None:
    r = rig("")
    proc = r.start()
    fed(r)
    proc.send_signal(signal.SIGHUP)
    fed(r, 2)
    assert proc.poll() is None and "SIGHUP ignored" in r.log_text()
    assert r.stop() == 0


def test_a_bad_config_is_refused_with_file_and_line_and_nothing_runs(tmp_path: Path) -> None:
    conf = tmp_path / "watchdog.conf"
    conf.write_text("interval = 1\nintervall = 2\n")
    out = subprocess.run(
        [sys.executable, "-m", "hastack", "watchdog", "run", "-c", str(conf)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert out.returncode == 2
    assert f"{conf}:2" in out.stderr
    check = subprocess.run(
        [sys.executable, "-m", "hastack", "watchdog", "check", "-c", str(conf)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert check.returncode == 1 and f"{conf}:2" in check.stderr


def test_a_watchdog_reboot_can_go_through_kexec(rig, tmp_path: Path) -> None:
    """reboot-command = `hastack kernel kexec reboot --fallback`: the running kernel (a fixture
    /boot and /proc here) is loaded with its command line, then booted. The kexec binary is a
    stand-in that records its calls, and the fallback a script: nothing can reboot this host."""
    release = "6.1.0-test"
    boot, proc = tmp_path / "boot", tmp_path / "proc"
    boot.mkdir()
    proc.mkdir()
    (boot / f"vmlinuz-{release}").write_bytes(b"MZ kernel")
    (boot / f"initrd.img-{release}").write_bytes(b"initrd")
    (boot / f"config-{release}").write_text("CONFIG_KEXEC=y\n")
    (proc / "cmdline").write_text("root=/dev/vda1 ro quiet\n")
    kexec = script(tmp_path / "kexec", f'echo "$@" >> "{tmp_path}/kexec-calls"\n')
    fallback = script(tmp_path / "plain-reboot.sh", f'echo plain >> "{tmp_path}/kexec-calls"\n')
    server = subprocess.Popen(["sleep", "1000"])
    pidfile = tmp_path / "server.pid"
    pidfile.write_text(f"{server.pid}\n")
    r = rig(f"pidfile = {pidfile}\nretry-timeout = 0\n")
    r.started.append(server)
    # The rig's reboot script records the action; here it also reboots the way an operator
    # who chose kexec would configure it.
    hastack = shlex.join([sys.executable, "-m", "hastack"])
    kexec_reboot = (
        f"{hastack} kernel kexec reboot --fallback --init other --release {release} "
        f"--kexec {kexec} --proc {proc} --boot {boot} --fallback-command {fallback}"
    )
    script(tmp_path / "reboot.sh", f'{kexec_reboot}\necho reboot >> "{tmp_path}/actions"\n')
    r.start()
    fed(r)
    assert not (tmp_path / "kexec-calls").exists()
    server.kill()
    server.wait()
    went_down(r, "pidfile", 3)  # ESRCH
    calls = (tmp_path / "kexec-calls").read_text().splitlines()
    assert calls == [
        f"-l {boot}/vmlinuz-{release} --initrd={boot}/initrd.img-{release} "
        "--append=root=/dev/vda1 ro quiet",
        "-e",
    ]
