"""`hastack replica fence-peer` / `unfence-peer` against a real hastack cluster: two node
daemons on 127.0.0.x (no root), a CIB with a promotable ocf:hastack:replica clone (kept
stopped: only its constraints matter here) and a fence device, the handlers run as a replica
daemon runs them (DRBD_* in the environment)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from lxml import etree

from hastack.daemon.control import query
from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env
from hastack.replica.cluster_fence import fenced_for

NEEDS_ROOT = False  # 127.0.0.0/8 needs no namespaces (see conftest)
TIMERS = Timers(keepalive=0.1, deadtime=0.5, initdead=5.0)
NODES = ("alice", "bob")
CONSTRAINT = "drbd-fence-by-handler-r0-r0-clone"

# A power switch for the loopback lab: the test kills the node's daemon itself; the device
# records that it was asked and reports the target off.
FENCE_SCRIPT = """#!/bin/sh
action="$1"; target="$2"
case "$action" in
  monitor|on) exit 0 ;;
  list) printf 'alice\\nbob\\n'; exit 0 ;;
  status) exit 2 ;;
  off|reboot) echo "$action $target" >> {log}; exit 0 ;;
  *) exit 1 ;;
esac
"""


def _cib(script: Path) -> bytes:
    return f"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="1" num_updates="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        <nvpair id="opts-st" name="stonith-enabled" value="true"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <primitive id="fence-lab" class="stonith" type="hastack/external">
        <instance_attributes id="fence-lab-ia">
          <nvpair id="fence-lab-script" name="script" value="{script}"/>
          <nvpair id="fence-lab-hosts" name="pcmk_host_list" value="alice bob"/>
          <nvpair id="fence-lab-reboot" name="pcmk_reboot_action" value="off"/>
        </instance_attributes>
      </primitive>
      <clone id="r0-clone">
        <meta_attributes id="r0-clone-meta">
          <nvpair id="r0-clone-promotable" name="promotable" value="true"/>
          <nvpair id="r0-clone-role" name="target-role" value="Stopped"/>
        </meta_attributes>
        <primitive id="r0" class="ocf" provider="hastack" type="replica">
          <instance_attributes id="r0-params">
            <nvpair id="r0-res" name="drbd_resource" value="r0"/>
          </instance_attributes>
        </primitive>
      </clone>
    </resources>
    <constraints/>
  </configuration>
  <status/>
</cib>""".encode()


def _drbd_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "drbd.conf"
    conf.write_text(
        """resource r0 {
  disk { fencing resource-and-stonith; }
  on alice { device /dev/drbd0; disk /dev/null; meta-disk internal; address 127.0.0.1:7789; }
  on bob { device /dev/drbd0; disk /dev/null; meta-disk internal; address 127.0.0.1:7790; }
}
"""
    )
    return conf


def _handler(c: Cluster, conf: Path, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **hastack_env(),
        "DRBD_RESOURCE": "r0",
        "DRBD_PEER": "bob",
        "DRBD_PEERS": "bob",
        "DRBD_CONF": str(conf),
        "CIB_file": "",
    }
    node = c["alice"]
    return subprocess.run(
        hastack_argv(
            "replica",
            verb,
            "--cluster-config",
            str(node.config_dir),
            "--cluster-node",
            "alice",
            *args,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _holder(c: Cluster) -> str | None:
    answer = query(c["alice"].control_path, {"cmd": "cib-query"}, timeout=10)
    return fenced_for(etree.fromstring(answer["cib"].encode()), CONSTRAINT)


def test_fence_peer_through_a_running_cluster(tmp_path: Path) -> None:
    log = tmp_path / "fenced.log"
    script = tmp_path / "fence.sh"
    script.write_text(FENCE_SCRIPT.format(log=log))
    script.chmod(0o755)
    conf = _drbd_conf(tmp_path)
    with Cluster(
        list(NODES), mode="loopback", timers=TIMERS, cib=_cib(script), extra_hacf=["two_node yes"]
    ) as c:
        c.wait_converged(timeout=20)

        # bob is a cluster member: the constraint keeps it Unpromoted -> 4
        member = _handler(c, conf, "fence-peer")
        assert member.returncode == 4, member.stderr
        assert _holder(c) == "alice"
        again = _handler(c, conf, "fence-peer")
        assert again.returncode == 4, again.stderr  # idempotent

        unfenced = _handler(c, conf, "unfence-peer")
        assert unfenced.returncode == 0, unfenced.stderr
        assert _holder(c) is None

        # bob dies: the cluster fences it, fence-peer waits for that -> 7
        c.kill("bob")
        started = time.monotonic()
        fenced = _handler(c, conf, "fence-peer", "--stonith-wait", "40")
        assert fenced.returncode == 7, fenced.stderr + c["alice"].log()[-3000:]
        assert time.monotonic() - started < 40
        assert "bob" in log.read_text()
        assert _holder(c) == "alice"


def test_replica_daemons_fence_and_unfence_through_the_cluster(tmp_path: Path) -> None:
    """The whole path: alice (Primary) loses bob, her daemon runs `hastack replica fence-peer`
    as drbd.conf's handler, which places the constraint through her node daemon and answers 4
    (bob is still a member); bob resyncs, and his after-resync-target handler (`unfence-peer`
    through his node daemon) removes it."""
    import asyncio
    import random
    import sys

    from hastack.replica.backing import create_metadata
    from hastack.replica.config import parse_drbd_conf
    from hastack.replica.model import MetaDisk
    from tests.unit.test_replica_daemon import (
        MIB,
        _ask,
        _daemons,
        _free_port,
        _states,
        _synced_pair,
        _until,
        _volume,
    )

    script = tmp_path / "fence.sh"
    script.write_text(FENCE_SCRIPT.format(log=tmp_path / "fenced.log"))
    script.chmod(0o755)
    with Cluster(
        list(NODES), mode="loopback", timers=TIMERS, cib=_cib(script), extra_hacf=["two_node yes"]
    ) as c:
        c.wait_converged(timeout=20)
        work = Path(c.workdir or "")
        # The same handler on both nodes: who "I" am follows from DRBD_PEER.
        log = tmp_path / "handlers.log"
        wrapper = tmp_path / "handler.sh"
        wrapper.write_text(
            "#!/bin/sh\n"
            'if [ "$DRBD_PEER" = bob ]; then n=alice; else n=bob; fi\n'
            f'exec {sys.executable} -m hastack replica "$1" --cluster-config {work}/$n/conf '
            f"--cluster-node $n >> {log} 2>&1\n"
        )
        wrapper.chmod(0o755)

        def handler(verb: str) -> str:
            return f"{wrapper} {verb}"

        for name in ("a.img", "b.img"):
            with open(tmp_path / name, "wb") as f:
                f.truncate(16 * MIB)
            create_metadata(str(tmp_path / name), MetaDisk(), al_extents=7, rng=random.Random(name))
        ports = [_free_port() for _ in range(4)]
        conf = parse_drbd_conf(
            f"""resource r0 {{
  net {{ protocol C; connect-int 1; }}
  disk {{ resync-rate 500M; c-plan-ahead 0; fencing resource-only; }}
  handlers {{
    fence-peer "{handler("fence-peer")}";
    after-resync-target "{handler("unfence-peer")}";
  }}
  on alice {{ device /dev/drbd0; disk {tmp_path}/a.img; meta-disk internal;
             address 127.0.0.1:{ports[0]}; nbd-address 127.0.0.1:{ports[2]}; }}
  on bob {{ device /dev/drbd0; disk {tmp_path}/b.img; meta-disk internal;
           address 127.0.0.1:{ports[1]}; nbd-address 127.0.0.1:{ports[3]}; }}
}}
""",
            str(tmp_path / "drbd.conf"),
        )

        async def scenario() -> None:
            async with _daemons(conf, tmp_path) as daemons:
                await _synced_pair(daemons, tmp_path)
                alice = daemons["alice"]
                # bob's after-resync-target of the initial sync (unfence-peer) must be over
                # first: finishing after alice's fence-peer, it would remove its constraint
                await _until(
                    lambda: log.exists() and "nothing to remove" in log.read_text(), timeout=60
                )
                await _ask(tmp_path, "bob", "disconnect")
                await _until(lambda: _states(alice)[2] == "Outdated", timeout=60)
                # placed through the DC before the handler answered; alice's copy follows
                await _until(lambda: _holder(c) == "alice", timeout=30)
                data = b"\x42" * 65536
                await _volume(alice).app_write(3 * MIB, data, False)
                await _ask(tmp_path, "bob", "connect")
                bob = daemons["bob"]
                await _until(lambda: _states(bob) == ("Connected", "UpToDate", "UpToDate"))
                await _until(lambda: _holder(c) is None, timeout=60)
                assert _volume(bob).backing.read(3 * MIB, len(data)) == data

        asyncio.run(scenario())
        text = log.read_text()
        assert "exit 4" in text and "removed drbd-fence-by-handler-r0-r0-clone" in text, text
