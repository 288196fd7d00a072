"""A floating IP and a small web service for lab clusters, and a client that checks them.

The CIB puts, in one group ``web``: the built-in ``ocf:hastack:IPaddr2`` (the floating address,
on link 0's subnet) and ``ocf:hastack:anything`` running Python's ``http.server`` on every
address of the node (so it answers on the floating address wherever the group runs). The
client is a lab host that runs no node; `http_ok` fetches a page from it through the floating
address, with a fresh TCP connection each time.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from hastack.lab.cluster import Cluster
from hastack.lab.netns import Lab

WEB_PORT = 8080


def ip_primitive(vip: str, monitor: str) -> str:
    """The floating address ``vip`` (/24 on eth0, link 0) as the built-in IPaddr2."""
    return f"""<primitive id="vip" class="ocf" provider="hastack" type="IPaddr2">
          <instance_attributes id="vip-ia">
            <nvpair id="vip-ip" name="ip" value="{vip}"/>
            <nvpair id="vip-mask" name="cidr_netmask" value="24"/>
            <nvpair id="vip-nic" name="nic" value="eth0"/>
          </instance_attributes>
          <operations>
            <op id="vip-monitor" name="monitor" interval="{monitor}" timeout="10s"/>
          </operations>
        </primitive>"""


def web_cib(
    vip: str,
    *,
    port: int = WEB_PORT,
    stickiness: int = 0,
    migration_threshold: int | None = None,
    monitor: str = "1s",
    prefer: str | None = "n1",
    docroot: str = "/",
    stonith: str | None = None,
    service: tuple[str, str] | None = None,
    options: Mapping[str, str] | None = None,
    extra: str = "",
) -> bytes:
    """The CIB of the web group. Without `stonith` (the XML of fence device primitives)
    fencing is disabled; with it, stonith-enabled is true and the devices are configured.
    `service` replaces the web server: (primitive id, Python command-line options).
    `options`: more cluster options; `extra`: more primitives of the group, after the
    server (their XML)."""
    server = f"-m http.server {port} --bind 0.0.0.0 --directory {shlex.quote(docroot)}"
    rid, server = service if service is not None else ("httpd", server)
    threshold = (
        f'<nvpair id="rd-mt" name="migration-threshold" value="{migration_threshold}"/>'
        if migration_threshold is not None
        else ""
    )
    location = (
        f'<rsc_location id="web-prefers-{prefer}" rsc="web" node="{prefer}" score="100"/>'
        if prefer
        else ""
    )
    enabled = "false" if stonith is None else "true"
    more = "".join(
        f'\n        <nvpair id="opt-{name}" name="{name}" value="{value}"/>'
        for name, value in (options or {}).items()
    )
    return f"""<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="{enabled}"/>
        <nvpair id="opt-recheck" name="cluster-recheck-interval" value="1min"/>{more}
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>{stonith or ""}
      <group id="web">
        {ip_primitive(vip, monitor)}
        <primitive id="{rid}" class="ocf" provider="hastack" type="anything">
          <instance_attributes id="{rid}-ia">
            <nvpair id="{rid}-bin" name="binfile" value="{sys.executable}"/>
            <nvpair id="{rid}-opts" name="cmdline_options" value="{server}"/>
          </instance_attributes>
          <operations>
            <op id="{rid}-monitor" name="monitor" interval="{monitor}" timeout="10s"/>
            <op id="{rid}-start" name="start" interval="0" timeout="20s"/>
            <op id="{rid}-stop" name="stop" interval="0" timeout="20s"/>
          </operations>
        </primitive>{extra}
      </group>
    </resources>
    <constraints>{location}</constraints>
    <rsc_defaults>
      <meta_attributes id="rd">
        <nvpair id="rd-stick" name="resource-stickiness" value="{stickiness}"/>{threshold}
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
""".encode()


def floating_ip(cluster: Cluster, index: int = 200) -> str:
    """An unused address on link 0's subnet (hosts take .1 upwards)."""
    assert cluster.lab is not None
    return lab_address(cluster.lab, index)


def lab_address(lab: Lab, index: int) -> str:
    """Address number `index` of link 0's subnet."""
    return str(lab.link_subnet(0).network_address + index)


def holders(cluster: Cluster, vip: str) -> list[str]:
    """The nodes that have the address on an interface now."""
    assert cluster.lab is not None
    return hosts_holding(cluster.lab, cluster.names, vip)


def hosts_holding(lab: Lab, hosts: Iterable[str], vip: str) -> list[str]:
    """The hosts of `lab` among `hosts` that have the address on an interface now."""
    out = []
    for name in hosts:
        addrs = lab[name].run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
        if f" {vip}/" in addrs:
            out.append(name)
    return out


_CLIENT = """
import socket, sys
vip, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    with socket.create_connection((vip, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
        s.settimeout(timeout)
        head = s.recv(64)
except OSError as e:
    print("fail", e)
    sys.exit(1)
print(head.split(b"\\r\\n")[0].decode())
sys.exit(0 if head.startswith(b"HTTP/1.0 200") else 1)
"""


def http_ok(
    cluster: Cluster, vip: str, client: str = "client", port: int = WEB_PORT, timeout: float = 1.0
) -> bool:
    """Whether the client gets a page through the floating address (a new connection)."""
    assert cluster.lab is not None
    result = cluster.lab[client].run(
        [sys.executable, "-c", _CLIENT, vip, str(port), str(timeout)], check=False
    )
    return result.returncode == 0


def pid_of_service(cluster: Cluster, node: str, resource: str = "httpd") -> int | None:
    """The PID the anything agent recorded for `resource` on `node` (HA_VARRUN is per node)."""
    path = Path(cluster[node].run_dir) / node / "varrun" / f"anything_{resource}.pid"
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


_PROBER = """
import socket, sys, time
vip, port, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[4])
time.sleep(max(0.0, start_at - time.monotonic()))
deadline = time.monotonic() + float(sys.argv[3])
failed = False  # only a page after a failed attempt counts: the service came back
while time.monotonic() < deadline:
    try:
        with socket.create_connection((vip, port), timeout=0.02) as s:
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            s.settimeout(1.0)
            ok = s.recv(12).startswith(b"HTTP/1.0 200")
    except OSError:
        ok = False
    if ok and failed:
        print(f"{time.monotonic():.6f}")
        sys.exit(0)
    if not ok:
        failed = True
    time.sleep(0.002)
sys.exit(1)
"""


def start_prober(
    cluster: Cluster,
    vip: str,
    start_at: float,
    client: str = "client",
    port: int = WEB_PORT,
    timeout: float = 30.0,
) -> subprocess.Popen[str]:
    """A client that, from `start_at` (time.monotonic(), which every namespace shares), opens a
    new connection to the floating address every 2 ms, and reports the first page it gets
    after an attempt failed (the service came back); read it with `probe_result`. Started
    ahead of a fault, so that its own start-up is not counted."""
    assert cluster.lab is not None
    argv = cluster.lab[client].ns_argv(
        [sys.executable, "-c", _PROBER, vip, str(port), str(timeout), f"{start_at:.6f}"]
    )
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def probe_result(
    prober: subprocess.Popen[str], since: float, timeout: float = 60.0
) -> float | None:
    """Seconds from `since` to the prober's first page (None: none came in its time)."""
    out, _ = prober.communicate(timeout=timeout)
    if prober.returncode != 0 or not out.strip():
        return None
    return float(out.strip()) - since


_FENCE_SCRIPT = """#!/bin/sh
# A fence device for lab hosts (hastack/external): it does to the target what a power switch
# does (every process killed at once, the interfaces down), and logs each power action.
action="$1"; target="$2"
case "$target" in
{cases}
  "") ;;
  *) echo "unknown host $target" >&2; exit 1 ;;
esac
case "$action" in
  monitor) exit 0 ;;
  list) printf '%s\\n' {names}; exit 0 ;;
  status) [ -n "$(ip netns pids "$ns")" ] && exit 0; exit 2 ;;
  off|reboot)
    echo "$(date +%s.%N) $action $target" >> {log}
    for round in 1 2 3 4 5; do
      pids=$(ip netns pids "$ns"); [ -z "$pids" ] && break
      kill -9 $pids 2>/dev/null; sleep 0.01
    done
    for dev in $devs; do ip -n "$ns" addr flush dev "$dev"; ip -n "$ns" link set "$dev" down; done
    exit 0 ;;
  on) exit 0 ;;
  *) echo "unknown action $action" >&2; exit 1 ;;
esac
"""


def lab_fence_script(lab: Lab, hosts: Iterable[str], path: Path, log: Path) -> Path:
    """Write a fence script (for ``hastack/external``) that powers lab hosts off, appending
    ``TIME ACTION HOST`` to `log` for every power action; returns `path`."""
    names = list(hosts)
    cases = "\n".join(
        f"  {name}) ns={shlex.quote(lab[name].netns)}; "
        f"devs={shlex.quote(' '.join(f'eth{j}' for j in range(lab.links)))} ;;"
        for name in names
    )
    text = _FENCE_SCRIPT.format(
        cases=cases, names=" ".join(shlex.quote(n) for n in names), log=shlex.quote(str(log))
    )
    path.write_text(text)
    path.chmod(0o755)
    return path


def external_fence_primitive(script: Path, hosts: Iterable[str], rid: str = "fence-lab") -> str:
    """A ``hastack/external`` stonith primitive running `script` for `hosts` (reboot = off:
    nothing in the lab powers a host back on by itself)."""
    return f"""
      <primitive id="{rid}" class="stonith" type="hastack/external">
        <instance_attributes id="{rid}-ia">
          <nvpair id="{rid}-script" name="script" value="{script}"/>
          <nvpair id="{rid}-hosts" name="pcmk_host_list" value="{" ".join(hosts)}"/>
          <nvpair id="{rid}-reboot" name="pcmk_reboot_action" value="off"/>
          <nvpair id="{rid}-timeout" name="pcmk_reboot_timeout" value="20s"/>
        </instance_attributes>
      </primitive>"""


def fence_log(log: Path) -> list[tuple[float, str, str]]:
    """The power actions a lab fence script logged: (time, action, host)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        stamp, action, host = line.split()
        out.append((float(stamp), action, host))
    return out
