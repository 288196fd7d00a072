"""Operation digests, computed as Pacemaker 2.1.5 computes them.

When an operation completes, Pacemaker's controller records in the ``lrm_rsc_op`` three md5
digests of the parameters the operation ran with:

``op-digest``
    every parameter of the operation;
``op-secure-digest``
    the same without the parameters the agent marks private (listed in ``op-secure-params``);
``op-restart-digest``
    only the parameters that cannot be reloaded (listed in ``op-force-restart``), recorded only
    when the agent supports reload.

The scheduler recomputes them from the configuration: a recorded digest that differs means the
resource's definition changed, and the resource is restarted, reloaded or its recurring
operation rescheduled. An unchanged resource must therefore give the identical digest, byte for
byte, or it would be restarted for nothing.

The hashed text is the parameters as one empty XML element, attributes sorted by name, preceded
by a space and followed by a newline (the format of Pacemaker's v1 XML digests)::

    ' <parameters CRM_meta_timeout="20000" state="/var/run/x"/>\\n'

The parameters are, for the node the operation ran on: the resource's instance attributes
(rules evaluated for that node and time), then those of its group and clone, then the
``rsc_defaults`` instance attributes (the first definition of a name wins); then the ``<op>``'s
own instance attributes for names not yet defined. Of Pacemaker's ``CRM_meta_*`` parameters only
``CRM_meta_timeout`` is kept, and only for a recurring operation. A few names are never hashed
(``id``, ``crm_feature_set``, ``op-digest``, ``on_node``, ``on_node_uuid``,
``pcmk_external_ip``).

What the scheduler does with them (:func:`changed_operations`): on nodes that can run resources,
for each active resource's entries since its last start (:func:`ops_to_check`), a changed
non-recurring entry restarts the resource (or reloads it when the agent recorded a restart
digest and only reloadable parameters changed), a changed recurring one is rescheduled, and a
recurring one no longer configured or in maintenance is cancelled. A failed start or monitor
whose definition changed since no longer counts against the resource
(:meth:`Digester.clears_failure`). crm_simulate runs "sanitized" (``sanitized=True`` here):
entries whose secure digest still matches count as unchanged, since shared CIBs hide passwords.

Checked against crm_simulate 2.1.5, which logs every digest it computes: all 6003 op-digests
and secure digests it computes for the corpus entries it compares (where the log could be
matched to an entry) are reproduced byte for byte.

Everything here is pure: the CIB and ``now`` in, digests out.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum

from hastack.crm.cib.model import (
    Bundle,
    Cib,
    Clone,
    Group,
    LrmResource,
    LrmRscOp,
    NvSet,
    Op,
    Primitive,
    parse_bool,
    parse_interval_ms,
)
from hastack.crm.rules import IdIndex, RuleContext, RuleError, evaluate_nvsets, index_ids
from hastack.crm.state import ClusterState, NodeStatus

#: Pacemaker's default operation timeout (``CRM_DEFAULT_OP_TIMEOUT_S``) in milliseconds.
DEFAULT_TIMEOUT_MS = 20_000

#: Parameters ``pcmk__filter_op_for_digest`` removes before any digest is taken.
FILTERED_PARAMETERS = (
    "id",
    "crm_feature_set",
    "op-digest",
    "on_node",
    "on_node_uuid",
    "pcmk_external_ip",
)

CRM_META = "CRM_meta_"
CRM_META_TIMEOUT = "CRM_meta_timeout"

#: Feature set from which the controller's secure digest starts from all the operation's
#: parameters (older controllers hashed only the resource's: none of the op's own parameters
#: and none of Pacemaker's fencing parameters).
_SECURE_FULL_FEATURE_SET = (3, 16, 0)

# Operations whose history entry Pacemaker checks for definition changes when not recurring.
_CHECKED_TASKS = ("monitor", "start", "promote", "migrate_from")


class DigestError(ValueError):
    """An operation's digests cannot be computed (its resource is not configured...)."""


# ---------------------------------------------------------------------------------------------
# The hashed text


_ESCAPES = {
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&apos;",
    "&": "&amp;",
    "\t": "    ",
    "\n": "\\n",
    "\r": "\\r",
}


def _escape(value: str) -> str:
    """An attribute value escaped as Pacemaker's ``crm_xml_escape`` does (not as XML does).

    The five XML specials become entities; a tab becomes four spaces; a newline and a carriage
    return become the two characters ``\\n`` and ``\\r``; any other control character and DEL
    become a backslash and three octal digits (``\\177``). Characters beyond ASCII are kept as
    their UTF-8 bytes. (Checked against crm_simulate 2.1.5's own digests.)
    """
    out: list[str] = []
    for ch in value:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


def digest_text(params: Mapping[str, str]) -> str:
    """The exact text Pacemaker hashes for a parameter set (names sorted bytewise)."""
    names = sorted(params, key=lambda n: n.encode("utf-8"))
    attrs = "".join(f' {name}="{_escape(params[name])}"' for name in names)
    return f" <parameters{attrs}/>\n"


def digest(params: Mapping[str, str]) -> str:
    """The md5 hex digest of a parameter set, as recorded in ``op-digest`` and friends."""
    return hashlib.md5(digest_text(params).encode("utf-8"), usedforsecurity=False).hexdigest()


def filter_for_digest(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters Pacemaker hashes (``pcmk__filter_op_for_digest``): without the
    bookkeeping names and without ``CRM_meta_*``, except ``CRM_meta_timeout`` when
    ``CRM_meta_interval`` is a nonzero number (a recurring operation)."""
    out = {k: v for k, v in params.items() if k not in FILTERED_PARAMETERS}
    timeout = None
    if _leading_int(out.get(CRM_META + "interval")) not in (None, 0):
        timeout = out.get(CRM_META_TIMEOUT)
    out = {k: v for k, v in out.items() if not k.startswith(CRM_META)}
    if timeout is not None:
        out[CRM_META_TIMEOUT] = timeout
    return out


def _names(listing: str) -> set[str]:
    """The names of a space-separated list such as ``op-force-restart=" state  passwd "``.

    Pacemaker tests membership with ``strstr(list, " name ")``; splitting on whitespace gives
    the same answer for every list the controller writes (names padded with spaces).
    """
    return set(listing.split())


def _leading_int(text: str | None) -> int | None:
    """The leading decimal integer of a text, as C's ``strtoll`` reads it (None if none)."""
    if text is None:
        return None
    s = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    digits = len(s) - len(s.lstrip("0123456789"))
    if digits == 0:
        return None
    return sign * int(s[:digits])


def crm_get_msec(text: str | None) -> int:
    """A duration in milliseconds as Pacemaker's ``crm_get_msec`` reads it, -1 when invalid.

    A number (fraction digits ignored) and a unit matched by prefix, case-insensitively:
    ms/msec, us/usec, s/sec (the default), m/min, h/hr. Unlike interval specifications, an
    ISO 8601 duration is not accepted here (so an operation ``timeout="PT1M"`` falls back to
    the default timeout, as in Pacemaker 2.1.5).
    """
    if text is None:
        return -1
    s = text.lstrip(" \t\n\r\f\v")
    num_len = len(s) - len(s.lstrip("0123456789."))
    if num_len == 0:
        return -1
    units = s[num_len:].lstrip(" \t\n\r\f\v").lower()
    multiplier, divisor = 1000, 1
    if units.startswith(("ms", "msec")):
        multiplier = 1
    elif units.startswith(("us", "usec")):
        multiplier, divisor = 1, 1000
    elif units.startswith(("s", "sec")):
        multiplier = 1000
    elif units.startswith(("m", "min")):
        multiplier = 60_000
    elif units.startswith(("h", "hr")):
        multiplier = 3_600_000
    elif units:
        return -1
    value = _leading_int(s)
    if value is None:  # ".5": strtoll reads no digits, Pacemaker takes it as invalid
        return -1
    return value * multiplier // divisor


def timeout_ms(text: str | None) -> int:
    """An operation timeout in milliseconds: the default 20 s when unset or invalid."""
    value = crm_get_msec(text)
    return value if value >= 0 else DEFAULT_TIMEOUT_MS


# ---------------------------------------------------------------------------------------------
# Where the parameters come from


@dataclass(frozen=True)
class ResourceEntry:
    """A configured primitive and what its parameters come from.

    ``primitive`` has its template applied (class, provider, type and ops); ``param_sets`` are
    its instance attribute sets in the order Pacemaker's expanded XML has them (a template's
    before the primitive's own, so that among sets of equal score the primitive's win);
    ``parents`` are the group, clone or bundle around it, innermost first.
    """

    primitive: Primitive
    param_sets: tuple[NvSet, ...]
    parents: tuple[Group | Clone | Bundle, ...] = ()

    @property
    def agent(self) -> tuple[str | None, str | None, str | None]:
        return (self.primitive.cls, self.primitive.provider, self.primitive.type)


def resource_index(cib: Cib) -> dict[str, ResourceEntry]:
    """Primitive id -> its entry, for every primitive (in groups, clones and bundles too).

    A primitive whose ``<operations id-ref=...>`` names another resource's operations gets
    those ops (Pacemaker expands the reference)."""
    index: dict[str, ResourceEntry] = {}
    shared: dict[str, tuple[Op, ...]] = {}
    for r in (*cib.all_primitives(), *cib.templates):
        if r.operations is not None and r.operations.id and r.operations.id_ref is None:
            shared.setdefault(r.operations.id, r.ops)

    def walk(r: object, parents: tuple[Group | Clone | Bundle, ...]) -> None:
        if isinstance(r, Primitive):
            template = cib.template(r.template) if r.template else None
            sets = r.instance_attributes
            if template is not None:
                sets = template.instance_attributes + sets
            if r.operations is not None and r.operations.id_ref and not r.ops:
                r = replace(r, ops=shared.get(r.operations.id_ref, ()))
            index[r.id] = ResourceEntry(cib.expand_template(r), sets, parents)
        elif isinstance(r, Group):
            for child in r.children:
                walk(child, (r, *parents))
        elif isinstance(r, Clone):
            walk(r.child, (r, *parents))
        elif isinstance(r, Bundle) and r.primitive is not None:
            walk(r.primitive, (r, *parents))

    for r in cib.resources:
        walk(r, ())
    return index


def find_op(primitive: Primitive, name: str, interval_ms: int) -> Op | None:
    """The configured ``<op>`` an action uses (``find_rsc_op_entry``): the first enabled op of
    that name and interval; migrate_to/migrate_from fall back to an op named ``migrate``."""
    for wanted in (name, "migrate") if name in ("migrate_to", "migrate_from") else (name,):
        for op in primitive.ops:
            try:
                enabled = parse_bool(op.enabled, True)
                interval = parse_interval_ms(op.interval)
            except ValueError:
                continue
            if enabled and op.name.lower() == wanted.lower() and interval == interval_ms:
                return op
    return None


def _shortest_monitor(primitive: Primitive) -> Op | None:
    """The enabled recurring monitor with the shortest interval (a probe's default timeout)."""
    best: tuple[int, Op] | None = None
    for op in primitive.ops:
        try:
            interval = parse_interval_ms(op.interval)
            enabled = parse_bool(op.enabled, True)
        except ValueError:
            continue
        if op.name != "monitor" or interval <= 0 or not enabled:
            continue
        if best is None or interval < best[0]:
            best = (interval, op)
    return best[1] if best else None


def _when(cib: Cib, now: float | datetime | None) -> datetime | None:
    """``now`` as an aware datetime; the CIB's ``execution-date`` when None."""
    if isinstance(now, datetime):
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if now is None:
        try:
            now = float(cib.extra["execution-date"])
        except (KeyError, ValueError):
            return None
    return datetime.fromtimestamp(now, UTC)


class Digester:
    """Computes digests for one CIB at one time; caches what every operation shares (the
    resource index, id-refs, node attributes, resource parameters per node).

    ``sanitized`` is crm_simulate's mode for CIBs whose private parameters (passwords) were
    replaced before they were shared: an entry whose ``op-secure-digest`` still matches is
    then taken as unchanged. A live cluster must leave it False: there a changed password is
    a changed definition.
    """

    def __init__(
        self, cib: Cib, now: float | datetime | None = None, *, sanitized: bool = False
    ) -> None:
        self.cib = cib
        self.now = _when(cib, now)
        self.sanitized = sanitized
        self.index = resource_index(cib)
        self.ids: IdIndex = index_ids(cib)
        self._node_attrs: dict[str, dict[str, str]] = {}
        self._params: dict[tuple[str, str], dict[str, str]] = {}
        self._op_defaults = tuple(s for s in cib.op_defaults if s.kind == "meta_attributes")
        self._rsc_defaults = tuple(s for s in cib.rsc_defaults if s.kind == "instance_attributes")

    def resource(self, rsc_id: str) -> ResourceEntry:
        """The entry of a primitive by its id or a clone instance's (``rsc:2``)."""
        base = rsc_id.partition(":")[0]
        entry = self.index.get(base)
        if entry is None:
            raise DigestError(f"resource {rsc_id!r} is not configured (no primitive {base!r})")
        return entry

    def evaluate(self, sets: tuple[NvSet, ...], ctx: RuleContext) -> dict[str, str]:
        """Merge attribute sets as Pacemaker does, with their rules evaluated in ``ctx``."""
        try:
            return evaluate_nvsets(sets, ctx, index=self.ids)
        except RuleError as e:
            raise DigestError(str(e)) from None

    def node_attributes(self, node: str) -> dict[str, str]:
        """A node's attributes as rules see them: Pacemaker's built-ins (``#uname``, ``#id``,
        ``#kind``, ``#is_dc``, ``#cluster-name``), the node's configured attributes, and its
        transient attributes from the status section (which win)."""
        cached = self._node_attrs.get(node)
        if cached is not None:
            return cached
        cib = self.cib
        options = cib.cluster_options()
        config = next((n for n in cib.nodes if (n.uname or n.id) == node), None)
        node_id = config.id if config is not None else node
        attrs = {
            "#uname": node,
            "#id": node_id,
            "#kind": "remote" if config is not None and config.type == "remote" else "cluster",
            "#is_dc": "true" if cib.extra.get("dc-uuid") == node_id else "false",
        }
        if "cluster-name" in options:
            attrs["#cluster-name"] = options["cluster-name"]
        no_node = RuleContext(node_attrs=None, now=self.now)
        if config is not None:
            for name, value in self.evaluate(config.attributes, no_node).items():
                attrs.setdefault(name, value)
        for state in cib.status:
            if state.id == node_id or (not state.id and state.uname == node):
                attrs.update(self.evaluate(state.transient or (), no_node))
        self._node_attrs[node] = attrs
        return attrs

    def resource_parameters(self, entry: ResourceEntry, node: str) -> dict[str, str]:
        """The resource's instance attributes on a node (``pe_rsc_params``): its own sets, then
        each container's, then ``rsc_defaults``; the first definition of a name wins."""
        key = (entry.primitive.id, node)
        cached = self._params.get(key)
        if cached is not None:
            return dict(cached)
        ctx = RuleContext(node_attrs=self.node_attributes(node), now=self.now)
        levels = [entry.param_sets]
        levels += [p.instance_attributes for p in entry.parents if not isinstance(p, Bundle)]
        levels.append(self._rsc_defaults)
        params: dict[str, str] = {}
        for sets in levels:
            for name, value in self.evaluate(sets, ctx).items():
                params.setdefault(name, value)
        self._params[key] = params
        return dict(params)

    def op_timeout_ms(self, entry: ResourceEntry, name: str, interval_ms: int) -> int:
        """The timeout Pacemaker gives an action (``CRM_meta_timeout``), in milliseconds.

        Precedence, highest first: the ``<op timeout>`` attribute, the op's meta attributes,
        ``op_defaults`` (rules evaluated for the op and the resource's agent), 20 s. A probe
        without any takes the timeout of the resource's shortest-interval monitor. (A fencing
        device's ``pcmk_monitor_timeout`` only applies to non-recurring actions, whose digests
        carry no timeout.)
        """
        ctx = RuleContext(node_attrs=None, now=self.now, rsc=entry.agent, op=(name, interval_ms))
        value = self.evaluate(self._op_defaults, ctx).get("timeout")
        if name == "monitor" and interval_ms == 0:
            shortest = _shortest_monitor(entry.primitive)
            if shortest is not None and shortest.timeout is not None:
                value = shortest.timeout
        op = find_op(entry.primitive, name, interval_ms)
        if op is not None:
            own = self.evaluate(op.meta, ctx).get("timeout")
            value = op.timeout if op.timeout is not None else own if own is not None else value
        return timeout_ms(value)

    def operation_parameters(
        self, entry: ResourceEntry, node: str, name: str, interval_ms: int
    ) -> tuple[dict[str, str], bool]:
        """The filtered parameters of an operation, and whether its ``<op>`` has instance
        attributes of its own (then a changed non-recurring op is restarted, not reloaded)."""
        params = self.resource_parameters(entry, node)
        op = find_op(entry.primitive, name, interval_ms)
        extra: dict[str, str] = {}
        if op is not None:
            ctx = RuleContext(
                node_attrs=None, now=self.now, rsc=entry.agent, op=(name, interval_ms)
            )
            extra = self.evaluate(op.instance_attributes, ctx)
        for key, value in extra.items():  # Pacemaker's hash2field: the resource's value wins
            params.setdefault(key, value)
        if interval_ms > 0:
            params[CRM_META + "interval"] = str(interval_ms)
            params[CRM_META_TIMEOUT] = str(self.op_timeout_ms(entry, name, interval_ms))
        return filter_for_digest(params), bool(extra)

    def calculate(self, node: str, op: LrmRscOp, rsc_id: str | None = None) -> OpDigests:
        """The digests Pacemaker computes for a history entry's operation on ``node``."""
        rsc = rsc_id if rsc_id is not None else _rsc_of(op)
        name, interval = op_task(op)
        try:
            entry = self.resource(rsc)
        except DigestError as e:
            raise DigestError(f"lrm_rsc_op {op.id!r}: {e}") from None
        params, op_has_params = self.operation_parameters(entry, node, name, interval)

        feature_set = op.extra.get("crm_feature_set") or self.cib.extra.get("crm_feature_set")
        old = _feature_set(feature_set) < _SECURE_FULL_FEATURE_SET if feature_set else False
        if old:
            # Older controllers hashed only the agent's declared parameters: none of the op's
            # and none of Pacemaker's own fencing parameters.
            secure = filter_for_digest(self.resource_parameters(entry, node))
            if entry.primitive.cls == "stonith":
                secure = {k: v for k, v in secure.items() if not _is_fence_param(k)}
        else:
            secure = dict(params)
        # An entry without op-secure-params has nothing private (Pacemaker falls back to
        # " passwd password user " only when it has no history entry at all).
        private = _names(op.extra.get("op-secure-params", ""))
        secure = {k: v for k, v in secure.items() if k not in private}
        # The controller hashes only the agent's declared parameters into the secure digest,
        # so never the timeout, whatever its feature set.
        secure.pop(CRM_META_TIMEOUT, None)

        # The restart digest exists when the entry records one (or lists the parameters that
        # need a restart): all parameters, or only those listed in op-force-restart.
        restart: dict[str, str] | None = None
        force = op.extra.get("op-force-restart")
        if force is not None:
            keep = _names(force)
            restart = {k: v for k, v in params.items() if k in keep}
        elif op.op_restart_digest is not None:
            restart = dict(params)
        return OpDigests(
            params=params,
            op_digest=digest(params),
            secure=secure,
            secure_digest=digest(secure),
            restart=restart,
            restart_digest=digest(restart) if restart is not None else None,
            op_has_params=op_has_params,
        )

    def compare(
        self, node: str, op: LrmRscOp, rsc_id: str | None = None
    ) -> tuple[DigestResult, str | None, OpDigests]:
        """Pacemaker's raw verdict on a history entry (``rsc_action_digest_cmp``), why, and the
        computed digests: the restart digest first, then a missing op-digest, then op-digest.
        A non-recurring op with parameters of its own whose op-digest changed is a restart."""
        name, interval = op_task(op)
        computed = self.calculate(node, op, rsc_id)
        where = f"{interval}ms-interval {name} of {rsc_id or _rsc_of(op)} on {node} ({op.id})"
        if (
            op.op_restart_digest is not None
            and computed.restart_digest is not None
            and op.op_restart_digest != computed.restart_digest
        ):
            listed = ", ".join(sorted(_names(op.extra.get("op-force-restart", "")))) or "none"
            why = (
                f"op-restart-digest of the {where} changed: recorded {op.op_restart_digest}, "
                f"now {computed.restart_digest} of {_show(computed.restart or {})} (parameters "
                f"that need a restart: {listed})"
            )
            return DigestResult.RESTART, why, computed
        if op.op_digest is None:
            return DigestResult.UNKNOWN, f"the {where} records no op-digest", computed
        if op.op_digest == computed.op_digest:
            return DigestResult.MATCH, None, computed
        why = (
            f"op-digest of the {where} changed: recorded {op.op_digest}, now "
            f"{computed.op_digest} of {_show(computed.params)}"
        )
        if interval == 0 and computed.op_has_params:
            # Pacemaker restarts so that the op's own parameters are applied and recorded.
            return DigestResult.RESTART, why + " (the op has its own parameters)", computed
        return DigestResult.ALL, why, computed

    def check(self, node: str, op: LrmRscOp, rsc_id: str | None = None) -> DigestCheck:
        """What the scheduler does about a history entry it compares with the configuration
        (``pcmk__check_action_config``): nothing, restart, reload or reschedule."""
        result, why, computed = self.compare(node, op, rsc_id)
        if result is DigestResult.MATCH:
            return DigestCheck(result, None, None, computed)
        if self._only_private_changed(op, computed):
            return DigestCheck(DigestResult.PRIVATE_ONLY, None, why, computed)
        if op.interval_ms > 0:
            # Whatever changed, a recurring operation is only run again with the new
            # definition (Pacemaker's force_restart of a monitor schedules that monitor).
            action = "reschedule"
        elif result is DigestResult.RESTART:
            action = "restart"
        elif op.op_restart_digest is not None:
            action = "reload"  # the agent supports reload: it recorded a restart digest
        else:
            action = "restart"
        return DigestCheck(result, action, why, computed)

    def clears_failure(self, node: str, op: LrmRscOp, rsc_id: str | None = None) -> bool:
        """Whether a failed start or monitor no longer counts because its definition changed
        since: Pacemaker then clears the resource's fail count on the node ("resource
        parameters have changed", ``should_clear_for_param_change``). An entry that records
        no op-digest never does; sanitized mode plays no part here."""
        name, _ = op_task(op)
        if name not in ("start", "monitor"):
            return False
        result = self.compare(node, op, rsc_id)[0]
        return result in (DigestResult.RESTART, DigestResult.ALL)

    def _only_private_changed(self, op: LrmRscOp, computed: OpDigests) -> bool:
        """In sanitized mode, whether the recorded secure digest still matches (then only
        private parameters can have changed: Pacemaker's ``only_sanitized_changed``)."""
        return (
            self.sanitized
            and op.op_secure_digest is not None
            and op.op_secure_digest == computed.secure_digest
        )


def operation_parameters(
    cib: Cib,
    rsc_id: str,
    node: str,
    name: str,
    interval_ms: int,
    now: float | datetime | None = None,
) -> dict[str, str]:
    """Every parameter Pacemaker hashes into an operation's ``op-digest`` (already filtered).

    ``rsc_id`` is a primitive's id or a clone instance's (``rsc:1``); ``node`` the node's name.
    Raises :class:`DigestError` when the resource is not configured.
    """
    d = Digester(cib, now)
    return d.operation_parameters(d.resource(rsc_id), node, name, interval_ms)[0]


# ---------------------------------------------------------------------------------------------
# Digests of a history entry


@dataclass(frozen=True)
class OpDigests:
    """The digests Pacemaker computes for one history entry, and what they hash.

    ``restart``/``restart_digest`` are None when the entry records neither an
    ``op-restart-digest`` nor an ``op-force-restart`` list (the agent does not support reload):
    Pacemaker then computes no restart digest.
    """

    params: Mapping[str, str]
    op_digest: str
    secure: Mapping[str, str]
    secure_digest: str
    restart: Mapping[str, str] | None
    restart_digest: str | None
    op_has_params: bool = False


def op_task(op: LrmRscOp) -> tuple[str, int]:
    """(operation name, interval in ms) of a history entry (from its key when unnamed)."""
    name = op.operation
    if not name:
        key = op.operation_key or op.id
        parts = key.rsplit("_", 2)
        if len(parts) != 3:
            raise DigestError(f"lrm_rsc_op {op.id!r}: no operation and no operation_key")
        name = parts[1]
    return name, op.interval_ms


def _feature_set(text: str | None) -> tuple[int, int, int]:
    """A feature set such as ``3.0.14`` as three numbers (missing ones are 0, as Pacemaker's
    ``compare_version`` treats them)."""
    parts = [(_leading_int(piece) or 0) for piece in (text or "").split(".")[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return (major, minor, patch)


def _is_fence_param(name: str) -> bool:
    """Whether a name is one of Pacemaker's own fencing parameters (``pcmk_stonith_param``)."""
    if name in ("provides", "stonith-timeout"):
        return True
    if not name.startswith("pcmk_"):
        return False
    if name in (
        "pcmk_action_limit",
        "pcmk_delay_base",
        "pcmk_delay_max",
        "pcmk_host_argument",
        "pcmk_host_check",
        "pcmk_host_list",
        "pcmk_host_map",
    ):
        return True
    return name.endswith(("_action", "_timeout", "_retries"))


def calculate_digests(
    cib: Cib,
    node: str,
    op: LrmRscOp,
    rsc_id: str | None = None,
    now: float | datetime | None = None,
) -> OpDigests:
    """The digests Pacemaker would record for a history entry's operation on ``node`` now.

    ``rsc_id`` is the ``lrm_resource`` the entry belongs to; when None it is read from the
    entry's ``operation_key``. Raises :class:`DigestError` naming the entry when its resource
    is not configured. (To check many entries, make one :class:`Digester` and reuse it.)
    """
    return Digester(cib, now).calculate(node, op, rsc_id)


def _rsc_of(op: LrmRscOp) -> str:
    key = op.operation_key or ""
    parts = key.rsplit("_", 2)
    if len(parts) != 3 or not parts[0]:
        raise DigestError(f"lrm_rsc_op {op.id!r}: cannot tell its resource (no operation_key)")
    return parts[0]


# ---------------------------------------------------------------------------------------------
# Comparing with the record


class DigestResult(Enum):
    """Pacemaker's verdict on a history entry (``rsc_action_digest_cmp``)."""

    MATCH = "match"
    RESTART = "restart"  # a parameter that cannot be reloaded changed: restart the resource
    ALL = "all"  # some parameter changed: reload (or reschedule a recurring operation)
    UNKNOWN = "unknown"  # the entry records no op-digest: treated as changed
    PRIVATE_ONLY = "private-only"  # sanitized mode: only private parameters differ, ignored


@dataclass(frozen=True)
class DigestCheck:
    """The outcome of comparing one history entry's recorded digests with the computed ones.

    ``action`` is what Pacemaker schedules for it: None (nothing), ``restart``, ``reload``
    (the agent supports reload: the entry has an ``op-restart-digest``) or ``reschedule`` (a
    recurring operation is cancelled and started again with the new parameters).
    """

    result: DigestResult
    action: str | None
    reason: str | None
    computed: OpDigests


def check_digests(
    cib: Cib,
    node: str,
    op: LrmRscOp,
    rsc_id: str | None = None,
    now: float | datetime | None = None,
    *,
    sanitized: bool = False,
) -> DigestCheck:
    """Compare a history entry's recorded digests with the configuration (``sanitized``: as
    crm_simulate, see :class:`Digester`)."""
    return Digester(cib, now, sanitized=sanitized).check(node, op, rsc_id)


def digests_changed(
    cib: Cib,
    node: str,
    op: LrmRscOp,
    rsc_id: str | None = None,
    now: float | datetime | None = None,
    *,
    sanitized: bool = False,
) -> str | None:
    """Which recorded digest of a history entry no longer matches the configuration, and why
    (for ``hastack explain``); None when the definition is unchanged (or, ``sanitized``, when
    only private parameters differ)."""
    check = Digester(cib, now, sanitized=sanitized).check(node, op, rsc_id)
    if check.action is None:
        return None
    return f"{check.reason}: {check.action}"


def _show(params: Mapping[str, str]) -> str:
    if not params:
        return "no parameters"
    return " ".join(f"{k}={v!r}" for k, v in sorted(params.items()))


def ops_to_check(lrm: LrmResource) -> tuple[LrmRscOp, ...]:
    """The history entries whose definition Pacemaker checks for a resource active on the node
    (``process_rsc_history``): those since the last start (or, without one, the last
    promote/demote, else the first successful monitor after the last stop), that are recurring
    or a monitor, start, promote or migrate_from. Empty when the history ends stopped."""
    ordered = _sorted_history(lrm.ops)
    start, stop = _active_range(ordered)
    if start < stop:
        return ()
    out: list[LrmRscOp] = []
    for i, op in enumerate(ordered):
        if i < start:
            continue
        try:
            name, interval = op_task(op)
        except DigestError:
            continue
        if interval > 0 or name in _CHECKED_TASKS:
            out.append(op)
    return tuple(out)


def _sorted_history(ops: Iterable[LrmRscOp]) -> list[LrmRscOp]:
    """The entries by call-id, pending (call-id -1) last, equal call-ids by last-rc-change."""

    def key(item: tuple[int, LrmRscOp]) -> tuple[int, int, int, int]:
        index, op = item
        try:
            changed = int(op.last_rc_change or op.last_run or 0)
        except ValueError:
            changed = 0
        call = op.call_id_int
        return (1 if call < 0 else 0, call, changed, index)

    return [op for _, op in sorted(enumerate(ops), key=key)]


def _active_range(ordered: list[LrmRscOp]) -> tuple[int, int]:
    """(start index, stop index) as Pacemaker's ``calculate_active_ops`` finds them."""
    start = stop = -1
    implied_monitor = implied_clone = -1
    for i, op in enumerate(ordered):
        try:
            name, _ = op_task(op)
        except DigestError:
            continue
        if name == "stop" and op.op_status == "0":
            stop = i
        elif name in ("start", "migrate_from"):
            start = i
        elif implied_monitor <= stop and name == "monitor":
            if op.rc_code in ("0", "8"):
                implied_monitor = i
        elif name in ("promote", "demote"):
            implied_clone = i
    if start == -1:
        start = implied_clone if implied_clone != -1 else implied_monitor
    return start, stop


# ---------------------------------------------------------------------------------------------
# The scheduler's pass over the whole status section


@dataclass(frozen=True)
class OpChange:
    """One history entry whose definition changed, and what Pacemaker does about it:
    ``restart``, ``reload``, ``reschedule`` (a recurring operation), or ``cancel`` (a
    recurring operation no longer configured, or on a node or resource in maintenance).
    ``rsc`` is the history's resource id (``rsc:N`` for a clone instance), ``task`` and
    ``interval_ms`` the recorded operation's."""

    rsc: str
    node: str
    op_id: str
    task: str
    interval_ms: int
    action: str
    reason: str


def node_checks_history(node: NodeStatus) -> bool:
    """Whether Pacemaker checks a node's history for definition changes: only on nodes that
    can run resources (online, not shutting down, unclean or standby) and on nodes in
    maintenance (whose recurring operations are cancelled)."""
    if node.maintenance:
        return True
    return node.online and not (node.shutdown or node.unclean or node.standby)


def checked_histories(cib: Cib, state: ClusterState) -> Iterator[tuple[str, LrmResource]]:
    """The (node, resource history) pairs whose entries Pacemaker compares with the
    configuration (``pcmk__handle_rsc_config_changes``): on nodes that can run resources or
    are in maintenance, histories of configured resources active there. Nodes in configuration
    order, histories in status order. Which entries of a history: :func:`ops_to_check`."""
    configured = {p.id for p in cib.all_primitives()}
    active = {(r.primitive, r.node) for r in state.active()}
    # The operation that left each active entry active, to tell apart several histories of
    # one anonymous clone on one node (only the instance running there is compared).
    reasons = {(r.node, r.reason) for r in state.active() if r.reason is not None}
    by_id = {n.id: name for name, n in state.nodes.items()}
    for node_name in [n.uname or n.id for n in cib.nodes]:
        status = state.nodes.get(node_name)
        if status is None or not node_checks_history(status):
            continue
        for node_state in cib.status:
            if by_id.get(node_state.id, node_state.uname) != node_name:
                continue
            bases = Counter(lrm.id.partition(":")[0] for lrm in node_state.lrm_resources)
            for lrm in node_state.lrm_resources:
                base = lrm.id.partition(":")[0]
                if base not in configured or (base, node_name) not in active:
                    continue
                if bases[base] > 1 and not any((node_name, op.id) in reasons for op in lrm.ops):
                    continue
                yield node_name, lrm


def changed_operations(
    cib: Cib,
    state: ClusterState,
    now: float | datetime | None = None,
    *,
    sanitized: bool = False,
) -> tuple[OpChange, ...]:
    """Every history entry Pacemaker compares (:func:`checked_histories`, :func:`ops_to_check`)
    whose definition changed, and what it does about it; recurring entries that are no longer
    configured or in maintenance are cancelled. ``sanitized`` as crm_simulate (see
    :class:`Digester`)."""
    digester = Digester(cib, now, sanitized=sanitized)
    try:
        cancel_orphans = parse_bool(cib.cluster_options().get("stop-orphan-actions"), True)
    except ValueError:
        cancel_orphans = True
    maintenance: dict[str, bool] = {}
    out: list[OpChange] = []
    for node, lrm in checked_histories(cib, state):
        entry = digester.resource(lrm.id)
        rid = entry.primitive.id
        if rid not in maintenance:
            maintenance[rid] = state.maintenance_mode or _maintenance(digester, entry)
        in_maintenance = state.nodes[node].maintenance or maintenance[rid]
        for op in ops_to_check(lrm):
            if _failure_expired(digester, entry, op):
                name, interval = op_task(op)
                why = f"{op.id}: its failure expired (failure-timeout)"
                out.append(OpChange(lrm.id, node, op.id, name, interval, "reschedule", why))
                continue
            change = _check_entry(digester, entry, lrm.id, node, op, in_maintenance, cancel_orphans)
            if change is not None:
                out.append(change)
    return tuple(out)


def _meta(digester: Digester, entry: ResourceEntry, name: str) -> str | None:
    """A resource's meta attribute: its own, else its containers', else ``rsc_defaults``' (the
    order Pacemaker merges meta attributes)."""
    ctx = RuleContext(node_attrs=None, now=digester.now, rsc=entry.agent)
    defaults = tuple(s for s in digester.cib.rsc_defaults if s.kind == "meta_attributes")
    for sets in (entry.primitive.meta, *(p.meta for p in entry.parents), defaults):
        value = digester.evaluate(sets, ctx).get(name)
        if value is not None:
            return value
    return None


def _failure_expired(digester: Digester, entry: ResourceEntry, op: LrmRscOp) -> bool:
    """Whether a failed recurring monitor's failure has expired (``failure-timeout`` passed).
    Pacemaker then marks the entry's restart digest "calculated-failure-timeout", so the
    definition check runs the monitor again."""
    name, interval = op_task(op)
    if name != "monitor" or interval == 0 or digester.now is None:
        return False
    key = op.transition_key or (op.transition_magic or "").partition(";")[2]
    fields = key.split(":")
    expected = fields[2] if len(fields) >= 4 else "0"
    if op.op_status == "0" and op.rc_code == expected:
        return False
    configured = find_op(entry.primitive, name, interval)
    if configured is not None and (configured.on_fail or "").lower() == "block":
        return False  # a blocked failure waits for the administrator, it never expires
    try:
        timeout = parse_interval_ms(_meta(digester, entry, "failure-timeout"))
        changed = int(op.last_rc_change or op.last_run or "")
    except ValueError:
        return False
    return timeout > 0 and changed + timeout // 1000 <= digester.now.timestamp()


def _maintenance(digester: Digester, entry: ResourceEntry) -> bool:
    """Whether a resource is in maintenance (its ``maintenance`` meta attribute)."""
    try:
        return parse_bool(_meta(digester, entry, "maintenance"))
    except ValueError:
        return False


def _check_entry(
    digester: Digester,
    entry: ResourceEntry,
    rsc_id: str,
    node: str,
    op: LrmRscOp,
    in_maintenance: bool,
    cancel_orphans: bool,
) -> OpChange | None:
    """What Pacemaker does about one history entry it checks (``process_rsc_history`` and
    ``pcmk__check_action_config``), None when nothing."""
    name, interval = op_task(op)
    if interval > 0 and in_maintenance:
        return OpChange(rsc_id, node, op.id, name, interval, "cancel", "maintenance mode")
    if interval > 0 and find_op(entry.primitive, name, interval) is None:
        # An orphaned recurring operation is cancelled (unless stop-orphan-actions=false,
        # then left running); its digest is not compared.
        if not cancel_orphans:
            return None
        return OpChange(rsc_id, node, op.id, name, interval, "cancel", "no longer configured")
    check = digester.check(node, op, rsc_id)
    if check.action is None:
        return None
    return OpChange(rsc_id, node, op.id, name, interval, check.action, check.reason or "")
