"""Generated CIBs for the scheduler benchmark: a realistic, settled cluster plus a few changes.

A cluster of ``nodes`` online nodes running ``resources`` primitives (``ocf:heartbeat:IPaddr2``
and ``ocf:heartbeat:Dummy``), about 30% of them in groups of 2-4 (an address first, then its
services), the rest on their own, with:

- ``rsc_defaults`` resource-stickiness 100, and a few resources with their own stickiness;
- location preferences (half the top-level resources prefer one node by 50-200, some avoid
  one with -INFINITY), colocations (INFINITY "with", -INFINITY "apart") and orderings
  (Mandatory and Optional) between top-level resources, always from a later resource to an
  earlier one, so neither forms a loop;
- a status section as a live cluster has it: every node has probed every resource (a
  ``monitor_0`` entry, rc 7 where it does not run), and where a resource runs its start and
  10 s monitor, each with the ``op-digest`` Pacemaker would record (computed with
  :mod:`hastack.crm.digest`, so an unchanged resource is never restarted).

Where each resource runs is where the scheduler keeps it (its preferred node, its colocation
target's node, else spread round-robin; stickiness holds it there), so the transition is
mostly "nothing to do", plus the changes listed in :class:`Changes`, two of each kind by
default whatever the size (a scheduler run answers an event), each on a lone primitive that
nothing depends on: resources moved by an operator (``cli-prefer-*`` INFINITY locations, as
``crm_resource --move`` makes them), failed monitors (fail-count 1; the first restarts in place,
the second has ``migration-threshold=1`` and moves), resources stopped by ``target-role``, and
new resources never seen on any node (a probe on every node, then a start). No clones, fencing
devices, remote nodes or tickets: the benchmark stays within what both schedulers handle end to
end (``stonith-enabled=false``).

Everything is drawn from ``random.Random(seed)``: the same arguments give the same bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from hastack.crm.cib.xml import read_cib
from hastack.crm.digest import Digester, digest

FEATURE_SET = "3.16.1"  # what Debian's Pacemaker 2.1.5 (crm_simulate) reports
VALIDATE_WITH = "pacemaker-3.9"
#: Seconds since the epoch the history was recorded at; the CIB's execution-date is an hour on.
BASE_TIME = 1_764_000_000
MONITOR_MS = 10_000
_UUID = "6b7f1c2e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"


@dataclass(frozen=True)
class Changes:
    """The resources whose state the transition changes (all sorted by id)."""

    moved: tuple[str, ...] = ()  # primitives with a cli-prefer location elsewhere
    failed: tuple[str, ...] = ()  # primitives with a failed recurring monitor
    stopped: tuple[str, ...] = ()  # primitives running, now with target-role=Stopped
    new: tuple[str, ...] = ()  # primitives with no history on any node


@dataclass(frozen=True)
class Generated:
    """A generated CIB (the XML text) and what it was made of."""

    xml: str
    resources: int
    nodes: int
    seed: int
    changes: Changes
    #: primitive id -> the node it runs on in the status section (absent: not running)
    running: dict[str, str] = field(default_factory=dict)


@dataclass
class _Top:
    """A top-level resource: one primitive or a group of them."""

    id: str
    members: list[str]
    prefers: tuple[str, int] | None = None
    avoids: str | None = None
    with_rsc: tuple[str, str] | None = None  # (target top id, "INFINITY" | "-INFINITY")
    node: str | None = None


def node_names(count: int) -> list[str]:
    width = len(str(count))
    return [f"node{i:0{width}d}" for i in range(1, count + 1)]


def _split(rng: random.Random, resources: int) -> list[list[str]]:
    """Primitive ids r0001... cut into top-level resources: about a third of the primitives sit
    in groups of 2-4, the rest alone."""
    width = max(4, len(str(resources)))
    ids = [f"r{i:0{width}d}" for i in range(1, resources + 1)]
    tops: list[list[str]] = []
    i = 0
    while i < len(ids):
        if rng.random() < 0.12 and i + 1 < len(ids):
            size = min(rng.randint(2, 4), len(ids) - i)
            tops.append(ids[i : i + size])
            i += size
        else:
            tops.append([ids[i]])
            i += 1
    return tops


def _attr_xml(parent: str, kind: str, pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    body = "".join(
        f"<nvpair id={quoteattr(f'{parent}-{kind[:4]}-{name}')} name={quoteattr(name)} "
        f"value={quoteattr(value)}/>"
        for name, value in pairs
    )
    return f'<{kind} id="{parent}-{kind}">{body}</{kind}>'


class _Builder:
    def __init__(self, resources: int, nodes: int, seed: int) -> None:
        if resources < 1 or nodes < 2:
            raise ValueError("a generated cluster needs at least 1 resource and 2 nodes")
        self.rng = random.Random(seed)
        self.resources, self.seed = resources, seed
        self.nodes = node_names(nodes)
        self.tops = [
            _Top(f"g{k:04d}" if len(m) > 1 else m[0], m)
            for k, m in enumerate(_split(self.rng, resources))
        ]
        self.agent: dict[str, str] = {}
        self.meta: dict[str, list[tuple[str, str]]] = {}
        self.params: dict[str, list[tuple[str, str]]] = {}
        self.constraints: list[str] = []
        self.firsts: set[str] = set()  # the top-level resources some ordering starts from

    # -- configuration ----------------------------------------------------------------------

    def primitives(self) -> None:
        for top in self.tops:
            for j, rid in enumerate(top.members):
                # a group starts with its address; lone resources are mostly services
                address = j == 0 and (len(top.members) > 1 or self.rng.random() < 0.3)
                n = int(rid[1:])
                if address:
                    self.agent[rid] = "IPaddr2"
                    ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
                    self.params[rid] = [("ip", ip), ("cidr_netmask", "16")]
                else:
                    self.agent[rid] = "Dummy"
                    self.params[rid] = [("state", f"/run/resource-agents/{rid}.state")]
                meta: list[tuple[str, str]] = []
                if self.rng.random() < 0.05:
                    meta.append(("resource-stickiness", self.rng.choice(["200", "INFINITY"])))
                if self.rng.random() < 0.03:
                    meta.append(("priority", str(self.rng.randint(1, 10))))
                self.meta[rid] = meta

    def placement_constraints(self) -> None:
        rng, nodes = self.rng, self.nodes
        for k, top in enumerate(self.tops):
            if k > 0 and rng.random() < 0.08:
                target = self.tops[rng.randrange(max(0, k - 50), k)]
                top.with_rsc = (target.id, rng.choice(["INFINITY", "INFINITY", "-INFINITY"]))
            if (top.with_rsc is None or top.with_rsc[1] == "-INFINITY") and rng.random() < 0.5:
                top.prefers = (rng.choice(nodes), rng.choice([50, 100, 200]))
            if rng.random() < 0.1:
                top.avoids = rng.choice(nodes)
        for k, top in enumerate(self.tops):
            if top.prefers:
                node, score = top.prefers
                self.constraints.append(
                    f'<rsc_location id="loc-{top.id}" rsc="{top.id}" node="{node}" '
                    f'score="{score}"/>'
                )
            if top.avoids and top.avoids != (top.prefers or ("",))[0]:
                self.constraints.append(
                    f'<rsc_location id="ban-{top.id}" rsc="{top.id}" node="{top.avoids}" '
                    'score="-INFINITY"/>'
                )
            else:
                top.avoids = None
            if top.with_rsc:
                target, score = top.with_rsc
                self.constraints.append(
                    f'<rsc_colocation id="col-{top.id}" rsc="{top.id}" with-rsc="{target}" '
                    f'score="{score}"/>'
                )
            if k > 0 and rng.random() < 0.06:
                first = self.tops[rng.randrange(max(0, k - 50), k)]
                kind = rng.choice(["Mandatory", "Mandatory", "Optional"])
                self.firsts.add(first.id)
                self.constraints.append(
                    f'<rsc_order id="ord-{top.id}" first="{first.id}" then="{top.id}" '
                    f'kind="{kind}"/>'
                )

    def settle(self) -> None:
        """Where each top-level resource runs: where the scheduler would keep it."""
        by_id = {t.id: t for t in self.tops}
        spread = 0
        for top in self.tops:
            allowed = [n for n in self.nodes if n != top.avoids]
            if top.with_rsc:
                target = by_id[top.with_rsc[0]]
                if top.with_rsc[1] == "INFINITY":
                    if target.node in allowed:
                        top.node = target.node
                        continue
                    top.with_rsc = None  # an impossible "with": drop it
                    self.constraints = [c for c in self.constraints if f'"col-{top.id}"' not in c]
                else:
                    allowed = [n for n in allowed if n != target.node]
            if top.prefers and top.prefers[0] in allowed:
                top.node = top.prefers[0]
            else:
                top.node = allowed[spread % len(allowed)]
                spread += 1

    # -- the changes the transition makes ---------------------------------------------------

    def changes(self, per_kind: int) -> Changes:
        rng = self.rng
        # Only lone primitives that nothing else depends on or follows change: each change
        # stays local and costs the same number of actions at every size (a new resource: a
        # probe on every node and a start), so the sizes differ only in the settled part.
        referenced = {t.with_rsc[0] for t in self.tops if t.with_rsc} | self.firsts
        free = [
            t
            for t in self.tops
            if t.id not in referenced and t.with_rsc is None and len(t.members) == 1
        ]
        rng.shuffle(free)
        # A scheduler run answers an event: a handful of changes, however big the cluster
        # (a few in a cluster of 10 resources, ``per_kind`` of each kind from 100 up).
        count = max(1, min(per_kind, self.resources // 50))
        moved, free = free[:count], free[count:]
        stopped, free = free[:count], free[count:]
        new, free = free[:count], free[count:]
        failed_tops = free[:count]
        for top in moved:
            target = rng.choice([n for n in self.nodes if n not in (top.node, top.avoids)])
            self.constraints.append(
                f'<rsc_location id="cli-prefer-{top.id}" rsc="{top.id}" role="Started" '
                f'node="{target}" score="INFINITY"/>'
            )
        for top in stopped:
            self.meta[top.id] = [*self.meta[top.id], ("target-role", "Stopped")]
        failed = []
        for top in failed_tops:
            rid = top.id
            failed.append(rid)
            if len(failed) % 2 == 0:  # then it moves; the others restart where they are
                self.meta[rid] = [*self.meta[rid], ("migration-threshold", "1")]
        new_ids = [rid for top in new for rid in top.members]
        for top in new:
            top.node = None
        return Changes(
            moved=tuple(sorted(t.id for t in moved)),
            failed=tuple(sorted(failed)),
            stopped=tuple(sorted(t.id for t in stopped)),
            new=tuple(sorted(new_ids)),
        )

    # -- XML ------------------------------------------------------------------------------------

    def primitive_xml(self, rid: str) -> str:
        ops = (
            f'<operations><op id="{rid}-monitor-10s" name="monitor" interval="10s" '
            f'timeout="20s"/><op id="{rid}-start-0" name="start" interval="0" timeout="20s"/>'
            f'<op id="{rid}-stop-0" name="stop" interval="0" timeout="20s"/></operations>'
        )
        return (
            f'<primitive id="{rid}" class="ocf" provider="heartbeat" type="{self.agent[rid]}">'
            f"{_attr_xml(rid, 'instance_attributes', self.params[rid])}"
            f"{_attr_xml(rid, 'meta_attributes', self.meta[rid])}{ops}</primitive>"
        )

    def configuration(self) -> str:
        resources = []
        for top in self.tops:
            if len(top.members) == 1:
                resources.append(self.primitive_xml(top.id))
            else:
                members = "".join(self.primitive_xml(m) for m in top.members)
                meta = _attr_xml(top.id, "meta_attributes", self.meta.get(top.id, []))
                resources.append(f'<group id="{top.id}">{meta}{members}</group>')
        nodes = "".join(
            f'<node id="{k}" uname="{name}">'
            f"{_attr_xml(name, 'instance_attributes', [('rack', f'rack{k % 4}')])}</node>"
            for k, name in enumerate(self.nodes, 1)
        )
        options = [
            ("stonith-enabled", "false"),
            ("no-quorum-policy", "stop"),
            ("cluster-infrastructure", "corosync"),
            ("cluster-name", "bench"),
        ]
        props = "".join(
            f'<nvpair id="cib-bootstrap-options-{n}" name="{n}" value="{v}"/>' for n, v in options
        )
        return (
            '<configuration><crm_config><cluster_property_set id="cib-bootstrap-options">'
            f"{props}</cluster_property_set></crm_config><nodes>{nodes}</nodes>"
            f"<resources>{''.join(resources)}</resources>"
            f"<constraints>{''.join(self.constraints)}</constraints>"
            '<rsc_defaults><meta_attributes id="rsc-options"><nvpair '
            'id="rsc-options-resource-stickiness" name="resource-stickiness" value="100"/>'
            "</meta_attributes></rsc_defaults>"
            '<op_defaults><meta_attributes id="op-options"><nvpair id="op-options-timeout" '
            'name="timeout" value="20s"/></meta_attributes></op_defaults></configuration>'
        )

    def cib(self, configuration: str, status: str) -> str:
        return (
            f'<cib crm_feature_set="{FEATURE_SET}" validate-with="{VALIDATE_WITH}" epoch="42" '
            f'num_updates="7" admin_epoch="0" have-quorum="1" dc-uuid="1" '
            f'execution-date="{BASE_TIME + 3600}">{configuration}<status>{status}</status></cib>\n'
        )

    def status(self, configuration: str, changes: Changes) -> str:
        # The digests come from the configuration itself, as the controller records them.
        digester = Digester(read_cib(self.cib(configuration, "").encode(), source="generated"))
        first = self.nodes[0]  # no parameter depends on the node: the digests are the same
        digests = {}
        for rid in self.agent:
            entry = digester.resource(rid)
            start = digester.operation_parameters(entry, first, "start", 0)[0]
            monitor = digester.operation_parameters(entry, first, "monitor", MONITOR_MS)[0]
            digests[rid] = (digest(start), digest(monitor))
        running = self.running()
        failed = set(changes.failed)
        new = set(changes.new)
        out = []
        for k, name in enumerate(self.nodes, 1):
            call = 2
            lrm: list[str] = []
            transient = [("#feature-set", FEATURE_SET)]
            for top in self.tops:
                for rid in top.members:
                    if rid in new:
                        continue
                    start_digest, monitor_digest = digests[rid]
                    agent = self.agent[rid]
                    ops: list[str] = []
                    t = BASE_TIME + k * 7 + call
                    if running.get(rid) == name:
                        ops.append(self.op(rid, name, "start", 0, 0, call, t, start_digest))
                        rc = 7 if rid in failed else 0
                        ops.append(
                            self.op(
                                rid,
                                name,
                                "monitor",
                                MONITOR_MS,
                                rc,
                                call + 1,
                                t + (600 if rc else 0),
                                monitor_digest,
                            )
                        )
                        if rc:
                            ops.append(
                                self.op(
                                    rid,
                                    name,
                                    "monitor",
                                    MONITOR_MS,
                                    rc,
                                    call + 1,
                                    t + 600,
                                    monitor_digest,
                                    failure=True,
                                )
                            )
                            key = f"{rid}#monitor_{MONITOR_MS}"
                            transient += [
                                (f"fail-count-{key}", "1"),
                                (f"last-failure-{key}", str(t + 600)),
                            ]
                        call += 2
                    else:
                        ops.append(self.op(rid, name, "monitor", 0, 7, call, t, start_digest))
                        call += 1
                    lrm.append(
                        f'<lrm_resource id="{rid}" class="ocf" provider="heartbeat" '
                        f'type="{agent}">{"".join(ops)}</lrm_resource>'
                    )
            pairs = "".join(
                f"<nvpair id={quoteattr(f'status-{k}-{n}')} name={quoteattr(n)} "
                f"value={quoteattr(v)}/>"
                for n, v in transient
            )
            out.append(
                f'<node_state id="{k}" uname="{name}" in_ccm="true" crmd="online" '
                'crm-debug-origin="do_update_resource" join="member" expected="member">'
                f'<transient_attributes id="{k}"><instance_attributes id="status-{k}">{pairs}'
                f'</instance_attributes></transient_attributes><lrm id="{k}"><lrm_resources>'
                f"{''.join(lrm)}</lrm_resources></lrm></node_state>"
            )
        return "".join(out)

    def op(
        self,
        rid: str,
        node: str,
        task: str,
        interval_ms: int,
        rc: int,
        call: int,
        when: int,
        op_digest: str,
        *,
        failure: bool = False,
    ) -> str:
        """One ``lrm_rsc_op`` as the controller records it: ``_last_0`` for the latest
        non-recurring operation, ``_monitor_10000`` for the recurring one, ``_last_failure_0``
        for the latest failure."""
        key = f"{rid}_{task}_{interval_ms}"
        op_id = f"{rid}_last_failure_0" if failure else key if interval_ms else f"{rid}_last_0"
        expected = 7 if task == "monitor" and interval_ms == 0 else 0
        tkey = f"{call}:1:{expected}:{_UUID}"
        return (
            f'<lrm_rsc_op id="{op_id}" operation_key="{key}" operation="{task}" '
            f'crm-debug-origin="do_update_resource" crm_feature_set="{FEATURE_SET}" '
            f'transition-key="{tkey}" transition-magic="0:{rc};{tkey}" exit-reason="" '
            f'on_node="{node}" call-id="{call}" rc-code="{rc}" op-status="0" '
            f'interval="{interval_ms}" last-rc-change="{when}" exec-time="12" queue-time="0" '
            f'op-digest="{op_digest}"/>'
        )

    def running(self) -> dict[str, str]:
        return {rid: top.node for top in self.tops if top.node for rid in top.members}


def generate(resources: int, nodes: int, seed: int = 1, changes: int = 2) -> Generated:
    """A CIB of ``resources`` primitives on ``nodes`` nodes, deterministic in ``seed``, with
    ``changes`` resources of each kind of :class:`Changes` (fewer in a cluster under 100
    resources)."""
    b = _Builder(resources, nodes, seed)
    b.primitives()
    b.placement_constraints()
    b.settle()
    changed = b.changes(changes)
    configuration = b.configuration()
    xml = b.cib(configuration, b.status(configuration, changed))
    return Generated(xml, resources, nodes, seed, changed, b.running())


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="write a generated CIB to stdout")
    parser.add_argument("resources", type=int)
    parser.add_argument("nodes", type=int)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.stdout.write(generate(args.resources, args.nodes, args.seed).xml)
