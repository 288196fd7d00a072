"""Where a node's CIB comes from when its daemon starts.

A configuration directory holds the cluster's resources in one of heartbeat's two styles:

* **R2**: ``DIR/cib.xml``, a Pacemaker CIB (heartbeat 2 kept it in /var/lib/heartbeat/crm);
* **R1**: ``DIR/haresources``, converted to the equivalent CIB at every start
  (:mod:`hastack.crm.haresources`), with ``auto_failback`` from ha.cf;
* neither: an empty CIB (the cluster runs, with nothing to manage until resources are added).

The cluster's own copy, saved by every node whenever the configuration changes
(``run_dir/NODE/cib.xml``), carries operator changes made since (moves, new resources…). At
start the newer of the two wins, by Pacemaker's version order (``admin_epoch``, ``epoch``,
``num_updates``): raise ``admin_epoch`` in the directory's file to make an edit there win over
the cluster's copy. Once running, the members reconcile their copies the same way (the DC
takes the newest, see :mod:`hastack.crm.controller`).

Every node of ha.cf gets a ``<node>`` entry (with its ha.cf ``node_id`` unless the CIB names it
already), so that node attributes, standby and the status section have a node to refer to; the
addition does not change the version, and every node makes the same one from the same ha.cf.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.model import ClusterConfig
from hastack.crm.cib.validate import is_valid, validate
from hastack.crm.haresources import convert_haresources

CIB_FILE = "cib.xml"
HARESOURCES_FILE = "haresources"
EMPTY_CIB = b"""<cib admin_epoch="0" epoch="0" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config/>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"""


@dataclass(frozen=True)
class LoadedCib:
    data: bytes
    origin: str  # what it was read from, for the log
    node_ids: dict[str, str]  # node name -> the id the CIB knows it by


def r1_scripts_in(directory: Path) -> set[str]:
    """The executable heartbeat R1 scripts of a resource.d directory (empty when absent)."""
    try:
        return {p.name for p in directory.iterdir() if p.is_file() and os.access(p, os.X_OK)}
    except OSError:
        return set()


def versions(data: bytes) -> tuple[int, int, int]:
    root = etree.fromstring(data, _parser())
    out = []
    for name in ("admin_epoch", "epoch", "num_updates"):
        try:
            out.append(int(root.get(name, "0")))
        except ValueError:
            out.append(0)
    return out[0], out[1], out[2]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def hacf_fences(config: ClusterConfig) -> bool:
    """ha.cf names fence devices (`stonith`, `stonith_host`): the fencer reads them there,
    so a CIB with fencing on needs no stonith resource of its own."""
    return config.hacf.stonith is not None or bool(config.hacf.stonith_hosts)


def _checked(data: bytes, source: str, config: ClusterConfig) -> bytes:
    problems = validate(data, source, devices_outside_cib=hacf_fences(config))
    if not is_valid(problems):
        errors = [p for p in problems if p.severity == "error"]
        raise ConfigError(
            [ConfigProblem(None, f"{p}") for p in errors]
            or [ConfigProblem(None, f"{source}: not a valid CIB")]
        )
    return data


def seed_cib(config: ClusterConfig) -> tuple[bytes, str]:
    """The CIB the configuration directory describes (R2 file, R1 conversion, or empty)."""
    directory = Path(config.directory)
    cib_path = directory / CIB_FILE
    haresources = directory / HARESOURCES_FILE
    if cib_path.exists():
        try:
            data = cib_path.read_bytes()
        except OSError as exc:
            raise ConfigError([ConfigProblem(None, f"{cib_path}: {exc.strerror or exc}")]) from None
        return _checked(data, str(cib_path), config), str(cib_path)
    if haresources.exists():
        try:
            text = haresources.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([ConfigProblem(None, f"{haresources}: {exc}")]) from None
        hacf = config.hacf
        data = convert_haresources(
            text,
            str(haresources),
            hacf.auto_failback,
            nodes=[n.name for n in hacf.nodes],
            r1_scripts=r1_scripts_in(directory / "resource.d"),
            fencing=hacf_fences(config),
        )
        return data, f"{haresources} (R1, converted)"
    return EMPTY_CIB, "an empty CIB (no cib.xml or haresources in the configuration directory)"


def load_cib(config: ClusterConfig, saved: Path) -> LoadedCib:
    """The CIB a starting node runs with: the configuration directory's, or the cluster's
    saved copy when that is newer. Raises ConfigError for a file that is not a usable CIB."""
    data, origin = seed_cib(config)
    if saved.exists():
        try:
            copy = saved.read_bytes()
            if versions(copy) > versions(data):
                data, origin = (
                    _checked(copy, str(saved), config),
                    f"{saved} (the cluster's saved copy)",
                )
        except (OSError, etree.XMLSyntaxError) as exc:
            # a damaged copy is not fatal: the directory's CIB and the other members' copies
            # are there; say so and go on without it
            origin += f"; the saved copy {saved} is unreadable ({exc}) and was ignored"
    data, ids = with_nodes(data, config)
    return LoadedCib(data, origin, ids)


def with_nodes(data: bytes, config: ClusterConfig) -> tuple[bytes, dict[str, str]]:
    """The CIB with a <node> for every node of ha.cf, and the name -> id map."""
    root = etree.fromstring(data, _parser())
    configuration = root.find("configuration")
    if configuration is None:
        configuration = etree.SubElement(root, "configuration")
    nodes = configuration.find("nodes")
    if nodes is None:
        nodes = etree.SubElement(configuration, "nodes")
    ids: dict[str, str] = {}
    for node in nodes.findall("node"):
        name = node.get("uname") or node.get("id")
        if name:
            ids[name] = node.get("id") or name
    used = set(ids.values())
    for spec in config.hacf.nodes:
        if spec.name in ids:
            continue
        node_id = str(spec.node_id)
        if node_id in used:
            node_id = spec.name
        etree.SubElement(nodes, "node", id=node_id, uname=spec.name)
        ids[spec.name] = node_id
        used.add(node_id)
    return etree.tostring(root, encoding="UTF-8"), {
        spec.name: ids[spec.name] for spec in config.hacf.nodes
    }
