"""Promotion scores from agents, end to end on the loopback cluster (no root): three real node
daemons run a promotable clone of a Stateful agent with no location constraint; the agent's
``crm_attribute --promotion`` (the executor's crm_attribute, reaching the node daemon) puts
``master-st`` into the CIB's status section, and the scheduler promotes by it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from hastack.agents.crm_tools import ENV_CONTROL, ENV_NODE
from hastack.daemon.control import ControlError, query
from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env

NEEDS_ROOT = False  # 127.0.0.0/8 needs no namespaces (see conftest)
TIMERS = Timers(keepalive=0.1, deadtime=0.5)
PACEMAKER_STATEFUL = Path("/usr/lib/ocf/resource.d/pacemaker/Stateful")


def wait(what: str, check: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def stateful_cib(provider: str, state_dir: Path, target_role: str | None = None) -> bytes:
    """A promotable clone `st-clone` of Stateful, its state file per node (by #uname rules: the
    three nodes share this machine), and no constraint at all."""
    per_node = "".join(
        f"""
          <instance_attributes id="st-ia-{n}" score="{10 - i}">
            <rule id="st-ia-{n}-rule" score="0">
              <expression id="st-ia-{n}-uname" attribute="#uname" operation="eq" value="{n}"/>
            </rule>
            <nvpair id="st-ia-{n}-state" name="state" value="{state_dir}/{n}.state"/>
          </instance_attributes>"""
        for i, n in enumerate(("n1", "n2", "n3"))
    )
    role = (
        f'<nvpair id="st-clone-role" name="target-role" value="{target_role}"/>'
        if target_role
        else ""
    )
    return f"""<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <clone id="st-clone">
        <meta_attributes id="st-clone-meta">
          <nvpair id="st-clone-promotable" name="promotable" value="true"/>
          <nvpair id="st-clone-promoted-max" name="promoted-max" value="1"/>{role}
        </meta_attributes>
        <primitive id="st" class="ocf" provider="{provider}" type="Stateful">{per_node}
          <operations>
            <op id="st-mon-p" name="monitor" interval="1s" role="Promoted" timeout="20s"/>
            <op id="st-mon-u" name="monitor" interval="2s" role="Unpromoted" timeout="20s"/>
          </operations>
        </primitive>
      </clone>
    </resources>
    <constraints/>
  </configuration>
  <status/>
</cib>""".encode()


def roles(state_dir: Path, nodes: list[str]) -> dict[str, str | None]:
    """Each node's Stateful role, from its state file (the agent's own record)."""
    out: dict[str, str | None] = {}
    for n in nodes:
        try:
            out[n] = (state_dir / f"{n}.state").read_text().strip() or None
        except FileNotFoundError:
            out[n] = None
    return out


def scores(c: Cluster, nodes: list[str]) -> dict[str, str | None]:
    """The `master-st` transient attribute of each node in the CIB of a running node's DC."""
    for name in c.running:
        try:
            reply = query(c[name].control_path, {"cmd": "cib-query"})
        except (OSError, ControlError):
            continue
        if reply.get("dc") != name:
            continue
        root = etree.fromstring(reply["cib"].encode())
        out: dict[str, str | None] = {}
        for n in nodes:
            values = root.xpath(
                f"//node_state[@uname='{n}']/transient_attributes//nvpair[@name='master-st']/@value"
            )
            out[n] = str(values[0]) if values else None
        return out
    return dict.fromkeys(nodes)


def promoted_on(state_dir: Path, nodes: list[str], node: str | None) -> Callable[[], bool]:
    def check() -> bool:
        now = roles(state_dir, nodes)
        promoted = [n for n, r in now.items() if r == "Promoted"]
        unpromoted = [n for n, r in now.items() if r == "Unpromoted"]
        one = len(promoted) == 1 and (node is None or promoted == [node])
        return one and len(unpromoted) == len(nodes) - 1

    return check


def test_builtin_stateful_scores_reach_the_cib_and_one_instance_is_promoted(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cib = stateful_cib("hastack", state_dir)
    with Cluster(3, mode="loopback", timers=TIMERS, cib=cib) as c:
        c.wait_converged(timeout=15)
        nodes = list(c.names)
        wait("one instance promoted, two unpromoted", promoted_on(state_dir, nodes, None))
        promoted = next(n for n, r in roles(state_dir, nodes).items() if r == "Promoted")
        # ocf:hastack:Stateful's scores (10 promoted, 5 unpromoted) are in the status section
        want = {n: ("10" if n == promoted else "5") for n in nodes}
        wait(f"scores {want}", lambda: scores(c, nodes) == want)
        # and the tools were written for the agents, in the node's run directory
        assert os.access(c[promoted].run_dir / promoted / "bin" / "crm_attribute", os.X_OK)


@pytest.mark.skipif(not PACEMAKER_STATEFUL.exists(), reason="needs Pacemaker's Stateful agent")
def test_pacemaker_stateful_promoted_by_score_then_moves_when_its_node_fails(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    # Started but kept unpromoted until the scores are set: nothing decides but the scores.
    cib = stateful_cib("pacemaker", state_dir, target_role="Unpromoted")
    with Cluster(3, mode="loopback", timers=TIMERS, cib=cib) as c:
        c.wait_converged(timeout=15)
        nodes = list(c.names)
        unpromoted = dict.fromkeys(nodes, "Unpromoted")
        wait("three unpromoted instances", lambda: roles(state_dir, nodes) == unpromoted)
        # Pacemaker's Stateful ran `${HA_SBIN_DIR}/crm_attribute --promotion -v 5` at start
        wait("scores 5 everywhere", lambda: scores(c, nodes) == dict.fromkeys(nodes, "5"))

        # n2 is the best candidate: the crm_attribute agents get, as an operator would run it
        tool = c["n1"].run_dir / "n1" / "bin" / "crm_attribute"
        env = {**os.environ, ENV_CONTROL: str(c["n1"].control_path), ENV_NODE: "n1"}
        env.pop("CIB_file", None)
        out = subprocess.run(
            [str(tool), "-N", "n2", "-n", "master-st", "-l", "reboot", "-v", "50"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert scores(c, nodes)["n2"] == "50"
        update = hastack_argv(
            "resource", "update", "st-clone", "--meta", "target-role=Started",
            "-c", str(c["n1"].config_dir), "--node", "n1",
        )  # fmt: skip
        done = subprocess.run(update, capture_output=True, text=True, timeout=60, env=hastack_env())
        assert done.returncode == 0, done.stderr

        wait("promoted on n2, the highest score", promoted_on(state_dir, nodes, "n2"))
        # promote set its score to 10, the others kept 5
        wait("n2 scored 10", lambda: scores(c, nodes) == {"n1": "5", "n2": "10", "n3": "5"})

        c.kill("n2")
        survivors = ["n1", "n3"]
        wait("the promoted role moved to a survivor", promoted_on(state_dir, survivors, None))
        now = roles(state_dir, survivors)
        moved = next(n for n in survivors if now[n] == "Promoted")
        # the dead node's transient scores are gone with it; the new promoted node scores 10
        want = {"n1": "5", "n3": "5", moved: "10", "n2": None}
        wait(f"scores {want}", lambda: scores(c, nodes) == want)
