"""hastack's ssh and ipmi fence devices against a real sshd and a real IPMI BMC simulator.

ssh: a real OpenSSH sshd runs in a lab host ("node", its own network namespace) with its own
config, host key and authorized key in a temporary directory; the device runs in another lab
host ("fencer"), in a child Python process started inside that namespace, exactly as the fencer
would run it. Nothing is ever powered off: the device's ``command_off`` (documented for tests
and hosts without systemd) is replaced by a command that writes a marker file, takes the node's
link down and kills the sshd it runs under - so the host "disappears" as a powered-off one does,
seen from the network.

ipmi: ``ipmi_sim`` (Debian's openipmi) serves IPMI 1.5/2.0 on a loopback UDP port, with a
chassis-control script that keeps the power state in a file and records every change.

Needs Debian packages openssh-server, openssh-client, openipmi, ipmitool, iproute2, nftables.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hastack.fencing.runners import DeviceCall, DeviceResult
from hastack.fencing.ssh_ipmi import NOT_CONFIRMABLE, run_ipmi
from hastack.lab.netns import Host, Lab
from hastack.lab.process import ManagedProcess

SSHD = "/usr/sbin/sshd"
SRC = str(Path(__file__).resolve().parents[2] / "src")

# The child process that runs one device call inside the fencer's namespace.
_RUNNER = textwrap.dedent(
    """
    import asyncio, json, sys
    from dataclasses import asdict
    from hastack.fencing.runners import DeviceCall
    from hastack.fencing.ssh_ipmi import run_ssh
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(run_ssh(DeviceCall(**spec)))
    print(json.dumps(asdict(result)))
    """
)


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None and not os.path.exists(tool):
            reason = f"{tool} is not installed (Debian: openssh-server / openipmi / ipmitool)"
            print(f"skipping: {reason}")
            pytest.skip(reason)


# ----------------------------------------------------------------------------- ssh


@dataclass
class SshNode:
    lab: Lab
    fencer: Host
    node: Host
    sshd: ManagedProcess
    tmp: Path
    key: Path  # authorized
    wrong_key: Path  # not authorized
    known_hosts: Path
    marker: Path

    def params(self, **extra: str) -> dict[str, str]:
        params = {
            "identity_file": str(self.key),
            "ssh_options": f"UserKnownHostsFile={self.known_hosts}",
            "command_off": (f"touch {self.marker}; ip link set eth0 down; kill -9 {self.sshd.pid}"),
        }
        params.update(extra)
        return params

    def fence(self, action: str, timeout: float, **extra: str) -> DeviceResult:
        """Run the ssh device inside the fencer's namespace, as the fencer would."""
        spec: dict[str, Any] = {
            "device": "ssh1",
            "agent": "hastack/ssh",
            "action": action,
            "target": "node",
            "port": self.node.addr(),
            "params": self.params(**extra),
            "timeout": timeout,
        }
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
        proc = subprocess.run(
            self.fencer.ns_argv([sys.executable, "-c", _RUNNER]),
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, f"device runner failed: {proc.stderr}"
        data = json.loads(proc.stdout)
        if data["targets"] is not None:
            data["targets"] = tuple(data["targets"])
        return DeviceResult(**data)


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hastack-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def ssh_node(tmp_path: Path) -> Iterator[SshNode]:
    _need(SSHD, "ssh", "ssh-keygen")
    # sshd insists on its privilege-separation directory; create it only if it is missing, and
    # remove it afterwards only if we created it.
    made_run_dir = not os.path.isdir("/run/sshd")
    if made_run_dir:
        os.makedirs("/run/sshd", mode=0o755)
    try:
        with Lab(["fencer", "node"], links=1) as lab:
            node, fencer = lab["node"], lab["fencer"]
            for name in ("hostkey", "fence_key", "wrong_key", "other_hostkey"):
                _keygen(tmp_path / name)
            (tmp_path / "authorized_keys").write_text((tmp_path / "fence_key.pub").read_text())
            config = tmp_path / "sshd_config"
            config.write_text(
                textwrap.dedent(
                    f"""\
                    Port 22
                    ListenAddress {node.addr()}
                    HostKey {tmp_path / "hostkey"}
                    AuthorizedKeysFile {tmp_path / "authorized_keys"}
                    PidFile none
                    StrictModes no
                    UsePAM no
                    PasswordAuthentication no
                    KbdInteractiveAuthentication no
                    PermitRootLogin prohibit-password
                    PubkeyAuthentication yes
                    LogLevel VERBOSE
                    """
                )
            )
            check = subprocess.run(
                [SSHD, "-t", "-f", str(config)], capture_output=True, text=True, check=False
            )
            assert check.returncode == 0, f"sshd rejects its test config: {check.stderr}"
            sshd = node.start(
                _without_login_rc([SSHD, "-D", "-e", "-f", str(config)], tmp_path),
                str(tmp_path / "sshd.log"),
            )
            host_pub = (tmp_path / "hostkey.pub").read_text().split()
            known = tmp_path / "known_hosts"
            known.write_text(f"{node.addr()} {host_pub[0]} {host_pub[1]}\n")
            setup = SshNode(
                lab,
                fencer,
                node,
                sshd,
                tmp_path,
                tmp_path / "fence_key",
                tmp_path / "wrong_key",
                known,
                tmp_path / "powered-off",
            )
            _wait_listening(node, sshd)
            yield setup
    finally:
        if made_run_dir:
            os.rmdir("/run/sshd")


def _without_login_rc(argv: list[str], tmp_path: Path) -> list[str]:
    """`argv` in a private mount namespace where the user's ~/.bashrc is an empty file.

    sshd runs every command through the user's login shell, and Debian's bash reads ~/.bashrc
    when started by sshd, even for `ssh host true`. The tests log in as the user running them
    (root in CI), whose ~/.bashrc is the machine's business: on a developer's machine it may run
    pyenv, which waits up to 60 s on a lock that a killed session left behind. The device's
    timing must not depend on that, so sshd sees an empty ~/.bashrc; the real file is untouched.
    The wrapper execs sshd, so the pid the tests kill is sshd's.
    """
    bashrc = Path.home() / ".bashrc"
    if not bashrc.exists():
        return argv
    empty = tmp_path / "empty-bashrc"
    empty.write_text("")
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    return [*wrapper, str(empty), str(bashrc), *argv]


def _wait_listening(node: Host, sshd: ManagedProcess) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert sshd.alive, f"sshd exited: {sshd.log()}"
        listening = node.run(["ss", "-Hltn", "sport = :22"], check=False).stdout
        if listening.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"sshd did not listen within 10 s: {sshd.log()}")


def test_ssh_off_is_confirmed_when_the_host_stops_answering(ssh_node: SshNode) -> None:
    result = ssh_node.fence("off", timeout=30)
    assert result.ok, result
    assert result.power == "off"
    assert ssh_node.marker.exists(), "the off command did not run on the host"
    assert result.reason == "" and "stopped answering" in result.output
    assert not ssh_node.sshd.alive
    assert result.seconds < 30


def test_ssh_reboot_runs_the_reboot_command_and_confirms(ssh_node: SshNode) -> None:
    reboot_marker = ssh_node.tmp / "rebooted"
    result = ssh_node.fence(
        "reboot",
        timeout=30,
        command_reboot=f"touch {reboot_marker}; ip link set eth0 down",
    )
    assert result.ok, result
    assert reboot_marker.exists()
    assert not ssh_node.marker.exists(), "reboot ran the off command"


def test_ssh_host_that_never_answers_is_a_failure_not_a_success(ssh_node: SshNode) -> None:
    ssh_node.node.cut()  # every packet to and from the node is dropped: it is silent
    start = time.monotonic()
    result = ssh_node.fence("off", timeout=4)
    assert not result.ok
    assert NOT_CONFIRMABLE in result.reason
    assert result.power is None
    assert not ssh_node.marker.exists()
    assert time.monotonic() - start < 4 + 5  # the call's timeout, plus starting Python


def test_ssh_off_times_out_when_the_host_keeps_answering(ssh_node: SshNode) -> None:
    # The command runs but the host stays up: after the timeout, a failure saying so.
    result = ssh_node.fence("off", timeout=6, command_off=f"touch {ssh_node.marker}")
    assert not result.ok
    assert ssh_node.marker.exists()
    assert (
        "not confirmed off" in result.reason and "still answered ssh (logged in)" in result.reason
    )
    assert result.power == "on"
    assert 5 <= result.seconds < 6 + 1.5
    assert ssh_node.sshd.alive


def test_ssh_confirm_timeout_bounds_the_wait(ssh_node: SshNode) -> None:
    result = ssh_node.fence(
        "off", timeout=30, command_off=f"touch {ssh_node.marker}", confirm_timeout="3s"
    )
    assert not result.ok and "not confirmed off" in result.reason
    assert result.seconds < 3 + 2.5


def test_ssh_wrong_key_is_refused_and_nothing_runs(ssh_node: SshNode) -> None:
    result = ssh_node.fence("off", timeout=10, identity_file=str(ssh_node.wrong_key))
    assert not result.ok
    assert "login" in result.reason and "refused" in result.reason
    assert "Permission denied" in result.output
    assert not ssh_node.marker.exists()
    assert ssh_node.sshd.alive


def test_ssh_unknown_host_key_is_never_accepted(ssh_node: SshNode) -> None:
    other = (ssh_node.tmp / "other_hostkey.pub").read_text().split()
    ssh_node.known_hosts.write_text(f"{ssh_node.node.addr()} {other[0]} {other[1]}\n")
    result = ssh_node.fence("off", timeout=10)
    assert not result.ok
    assert "host key" in result.reason
    assert not ssh_node.marker.exists()


def test_ssh_status_on_then_unknown(ssh_node: SshNode) -> None:
    result = ssh_node.fence("status", timeout=10)
    assert result.ok and result.power == "on", result
    ssh_node.node.cut()
    result = ssh_node.fence("status", timeout=3)
    assert not result.ok
    assert result.power is None, "a silent host's power is unknown, not off"
    assert "does not answer" in result.reason


# ----------------------------------------------------------------------------- ipmi

_CHASSIS = """\
#!/bin/sh
# ipmi_sim chassis control: DEVICE get PARM... | DEVICE set PARM VALUE...
state="$(dirname "$0")/power"
echo "$*" >> "$(dirname "$0")/chassis.log"
op=$2; shift 2
case $op in
get) for p in "$@"; do
       case $p in
       power) if [ -f "$state" ]; then echo "power:$(cat "$state")"; else echo "power:1"; fi;;
       boot) echo "boot:default";;
       esac
     done;;
set) while [ $# -ge 2 ]; do
       if [ "$1" = power ]; then echo "$2" > "$state"; fi
       shift 2
     done;;
*) exit 1;;
esac
"""


@dataclass
class Bmc:
    port: int
    dir: Path
    sim: ManagedProcess

    def params(self, **extra: str) -> dict[str, str]:
        params = {
            "ipaddr": "127.0.0.1",
            "ipport": str(self.port),
            "login": "fence",
            "password": "s3cret-pw",
            "cipher": "3",  # ipmi_sim does not offer cipher suite 17, ipmitool's default
        }
        params.update(extra)
        return params

    def call(self, action: str, timeout: float = 20, **extra: str) -> DeviceResult:
        call = DeviceCall(
            "bmc1", "hastack/ipmi", action, "node1", None, self.params(**extra), timeout
        )
        return asyncio.run(run_ipmi(call))

    def changes(self) -> list[str]:
        log = self.dir / "chassis.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split(" ", 1)[1] for line in lines if " set " in line]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bmc(tmp_path: Path) -> Iterator[Bmc]:
    _need("ipmi_sim", "ipmitool")
    port = _free_udp_port()
    chassis = tmp_path / "chassis.sh"
    chassis.write_text(_CHASSIS)
    chassis.chmod(0o755)
    auths = "none md2 md5 straight"
    (tmp_path / "lan.conf").write_text(
        textwrap.dedent(
            f"""\
            name "hastest"
            set_working_mc 0x20
              startlan 1
                addr 127.0.0.1 {port}
                priv_limit admin
                allowed_auths_callback {auths}
                allowed_auths_user {auths}
                allowed_auths_operator {auths}
                allowed_auths_admin {auths}
                guid a123456789abcdefa123456789abcdef
              endlan
              chassis_control "{chassis} 0x20"
              user 2 true "fence" "s3cret-pw" admin 10 {auths}
              user 3 true "viewer" "view-pw" user 10 {auths}
            """
        )
    )
    (tmp_path / "bmc.emu").write_text(
        "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"
    )
    (tmp_path / "state").mkdir()
    sim = ManagedProcess.spawn(
        ["ipmi_sim", "-n", "-p", "-c", str(tmp_path / "lan.conf"), "-f",
         str(tmp_path / "bmc.emu"), "-s", str(tmp_path / "state")],
        str(tmp_path / "ipmi_sim.log"),
    )  # fmt: skip
    try:
        setup = Bmc(port, tmp_path, sim)
        deadline = time.monotonic() + 10
        while setup.call("status", timeout=3).power != "on":
            assert sim.alive, f"ipmi_sim exited: {sim.log()}"
            assert time.monotonic() < deadline, f"ipmi_sim does not answer: {sim.log()}"
            time.sleep(0.1)
        yield setup
    finally:
        sim.reap(grace=2)


def test_ipmi_status_monitor_and_metadata(bmc: Bmc) -> None:
    result = bmc.call("status")
    assert result.ok and result.power == "on" and result.rc == 0, result
    assert "Chassis Power is on" in result.output
    assert bmc.call("monitor").ok
    assert '<parameter name="ipaddr"' in bmc.call("metadata").output
    assert bmc.changes() == []


def test_ipmi_off_is_confirmed_by_status_then_on(bmc: Bmc) -> None:
    result = bmc.call("off")
    assert result.ok and result.power == "off", result
    assert result.reason == "" and "(confirmed)" in result.output
    assert bmc.changes() == ["set power 0"]
    assert bmc.call("status").power == "off"
    # off again: already off, nothing sent to the chassis
    assert bmc.call("off").ok and bmc.changes() == ["set power 0"]
    result = bmc.call("on")
    assert result.ok and result.power == "on", result
    assert bmc.changes() == ["set power 0", "set power 1"]


def test_ipmi_reboot_is_off_confirmed_then_on(bmc: Bmc) -> None:
    result = bmc.call("reboot")
    assert result.ok and result.power == "on", result
    assert bmc.changes() == ["set power 0", "set power 1"]
    # the off was confirmed by a status between the two power commands
    out = result.output
    assert out.index("chassis power off") < out.index("Chassis Power is off")
    assert out.index("Chassis Power is off") < out.index("chassis power on")


def test_ipmi_reboot_with_method_cycle(bmc: Bmc) -> None:
    result = bmc.call("reboot", method="cycle")
    assert result.ok, result
    assert "chassis power cycle" in result.output
    assert bmc.changes()[:1] == ["set power 0"]


def test_ipmi_password_from_a_script(bmc: Bmc) -> None:
    script = bmc.dir / "pw.sh"
    script.write_text("#!/bin/sh\necho s3cret-pw\n")
    script.chmod(0o700)
    params = bmc.params(password_script=str(script))
    del params["password"]
    call = DeviceCall("bmc1", "hastack/ipmi", "status", "node1", None, params, 20)
    result = asyncio.run(run_ipmi(call))
    assert result.ok and result.power == "on", result
    assert "s3cret-pw" not in result.output


def test_ipmi_wrong_password_fails_fast_with_the_reason(bmc: Bmc) -> None:
    result = bmc.call("off", password="not-it")
    assert not result.ok
    assert "refused the password" in result.reason
    assert result.seconds < 5
    assert bmc.changes() == []


def test_ipmi_insufficient_privilege_is_a_clear_failure(bmc: Bmc) -> None:
    result = bmc.call("off", login="viewer", password="view-pw", privlvl="user")
    assert not result.ok
    assert "privilege" in result.reason
    assert bmc.changes() == []
    assert bmc.call("status").power == "on"


def test_ipmi_closed_port_fails_within_the_timeout() -> None:
    _need("ipmitool")
    port = _free_udp_port()  # nothing listens there
    call = DeviceCall(
        "bmc1", "hastack/ipmi", "off", "node1", None,
        {"ipaddr": "127.0.0.1", "ipport": str(port), "login": "fence", "password": "x"}, 3,
    )  # fmt: skip
    start = time.monotonic()
    result = asyncio.run(run_ipmi(call))
    assert not result.ok
    assert f"127.0.0.1:{port}" in result.reason
    assert "did not answer" in result.reason or "no IPMI session" in result.reason
    assert time.monotonic() - start < 3 + 1
