"""`hastack cib` edits against Pacemaker's own tools: the same edit made by cibadmin,
crm_attribute or crm_resource (Debian's pacemaker-cli-utils, on a file through CIB_file) and by
hastack must leave the same CIB — the same elements, ids, values and version counters.

crm_attribute 2.1.5 cannot edit rsc_defaults/op_defaults offline (it tries to map the local
host name to a node), so those are checked by the unit tests only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from hastack.crm.cib.edit import (
    AttributeOwner,
    apply_edit,
    create,
    delete,
    modify,
    parse_fragment,
    replace,
    set_attribute,
)

CIB = b"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="5" num_updates="2">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="cib-bootstrap-options-symmetric-cluster" name="symmetric-cluster"
          value="true"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
      <node id="2" uname="node2"/>
    </nodes>
    <resources>
      <primitive id="db" class="ocf" provider="heartbeat" type="Dummy">
        <operations><op id="db-mon" name="monitor" interval="10s"/></operations>
      </primitive>
      <primitive id="ip" class="ocf" provider="heartbeat" type="IPaddr2">
        <instance_attributes id="ip-p"><nvpair id="ip-p-ip" name="ip" value="10.0.0.9"/>
        </instance_attributes>
      </primitive>
    </resources>
    <constraints>
      <rsc_location id="loc" rsc="db" node="node2" score="100"/>
    </constraints>
  </configuration>
  <status>
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member" expected="member">
      <transient_attributes id="2">
        <instance_attributes id="status-2">
          <nvpair id="status-2-pingd" name="pingd" value="100"/>
        </instance_attributes>
      </transient_attributes>
    </node_state>
  </status>
</cib>
"""

Edit = Callable[[etree._Element], str]

# (the Pacemaker command, the same edit through hastack.crm.cib.edit)
CASES: dict[str, tuple[list[str], Edit]] = {
    "new cluster option": (
        ["crm_attribute", "-t", "crm_config", "-n", "no-quorum-policy", "-v", "ignore"],
        lambda r: set_attribute(r, AttributeOwner("property"), "no-quorum-policy", "ignore"),
    ),
    "update cluster option": (
        ["crm_attribute", "-t", "crm_config", "-n", "symmetric-cluster", "-v", "false"],
        lambda r: set_attribute(r, AttributeOwner("property"), "symmetric-cluster", "false"),
    ),
    "delete cluster option": (
        ["crm_attribute", "-t", "crm_config", "-n", "symmetric-cluster", "-D"],
        lambda r: set_attribute(r, AttributeOwner("property"), "symmetric-cluster", None),
    ),
    "permanent node attribute": (
        ["crm_attribute", "-N", "node1", "-n", "standby", "-v", "on"],
        lambda r: set_attribute(r, AttributeOwner("node", "node1"), "standby", "on"),
    ),
    "transient node attribute": (
        ["crm_attribute", "-N", "node2", "-n", "temp", "-v", "5", "-l", "reboot"],
        lambda r: set_attribute(r, AttributeOwner("node", "node2", lifetime="reboot"), "temp", "5"),
    ),
    "update transient node attribute": (
        ["crm_attribute", "-N", "node2", "-n", "pingd", "-v", "0", "-l", "reboot"],
        lambda r: set_attribute(
            r, AttributeOwner("node", "node2", lifetime="reboot"), "pingd", "0"
        ),
    ),
    "resource parameter, existing set": (
        ["crm_resource", "-r", "ip", "--set-parameter", "cidr_netmask", "-v", "24"],
        lambda r: set_attribute(r, AttributeOwner("resource", "ip"), "cidr_netmask", "24"),
    ),
    "resource parameter, new set": (
        ["crm_resource", "-r", "db", "--set-parameter", "fake", "-v", "3"],
        lambda r: set_attribute(r, AttributeOwner("resource", "db"), "fake", "3"),
    ),
    "resource meta-attribute": (
        ["crm_resource", "-r", "db", "--meta", "--set-parameter", "target-role", "-v", "Stopped"],
        lambda r: set_attribute(
            r, AttributeOwner("resource", "db", meta=True), "target-role", "Stopped"
        ),
    ),
    "delete resource parameter": (
        ["crm_resource", "-r", "ip", "--delete-parameter", "ip"],
        lambda r: set_attribute(r, AttributeOwner("resource", "ip"), "ip", None),
    ),
    "cibadmin create": (
        [
            "cibadmin",
            "-C",
            "-o",
            "resources",
            "-X",
            '<primitive id="mail" class="lsb" type="exim4"/>',
        ],
        lambda r: create(
            r, "resources", parse_fragment('<primitive id="mail" class="lsb" type="exim4"/>')
        ),
    ),
    "cibadmin modify": (
        [
            "cibadmin",
            "-M",
            "-X",
            '<primitive id="db" description="the database"><meta_attributes id="db-m">'
            '<nvpair id="db-m-s" name="resource-stickiness" value="50"/></meta_attributes>'
            "</primitive>",
        ],
        lambda r: modify(
            r,
            parse_fragment(
                '<primitive id="db" description="the database"><meta_attributes id="db-m">'
                '<nvpair id="db-m-s" name="resource-stickiness" value="50"/></meta_attributes>'
                "</primitive>"
            ),
        ),
    ),
    "cibadmin replace": (
        ["cibadmin", "-R", "-X", '<rsc_location id="loc" rsc="db" node="node1" score="50"/>'],
        lambda r: replace(
            r, parse_fragment('<rsc_location id="loc" rsc="db" node="node1" score="50"/>')
        ),
    ),
    "cibadmin delete": (
        ["cibadmin", "-D", "-X", '<primitive id="ip"/>'],
        lambda r: delete(r, fragment=parse_fragment('<primitive id="ip"/>')),
    ),
}


def canonical(data: bytes) -> tuple[tuple[str | None, ...], bytes]:
    """The version counters, and the configuration and status without formatting."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    versions = tuple(root.get(name) for name in ("admin_epoch", "epoch", "num_updates"))
    body = b"".join(
        etree.tostring(root.find(section), method="c14n") for section in ("configuration", "status")
    )
    return versions, body


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_edit_as_pacemakers_tool(case: str, tmp_path: Path) -> None:
    command, edit = CASES[case]
    if shutil.which(command[0]) is None:
        msg = f"{command[0]} (pacemaker-cli-utils) not installed: cannot compare with it"
        print(msg)
        pytest.skip(msg)
    theirs = tmp_path / "theirs.xml"
    theirs.write_bytes(CIB)
    env = dict(os.environ, CIB_file=str(theirs), LC_ALL="C")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ours = apply_edit(CIB, "ours.xml", edit)
    assert ours.changed
    assert canonical(ours.data) == canonical(theirs.read_bytes())
