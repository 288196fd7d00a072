"""`hastack node start`: one cluster node in the foreground, a thin asyncio shell around the core.

The daemon owns no logic of its own: it feeds the membership core what happens (datagrams, ICMP
replies, the passing of time) with the node's clock, and carries out the effects the core returns
(send on every link, ping, log). Everything that decides is in `hastack.membership.core`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hastack import __version__
from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.model import ClusterConfig
from hastack.crm.cib_source import LoadedCib, load_cib
from hastack.daemon import clock, logsetup, realtime
from hastack.daemon.control import ControlServer, Handler
from hastack.daemon.crm_shell import CrmShell, is_message_datagram
from hastack.daemon.rundir import AlreadyRunning, NodeRunDir
from hastack.fencing.fencer import FenceRecord
from hastack.membership.core import MembershipCore
from hastack.membership.effects import Effect, Fence, Log, Send, SendPing
from hastack.membership.params import CoreParams
from hastack.quorum.link import QuorumLink, client_tls
from hastack.transport import IcmpPinger, LinkEndpoint, endpoint_for
from hastack.transport.logevents import emit

INF = float("inf")
FENCE_RETRY = (
    5.0  # a failed fencing for the membership layer is reported (and asked again) this late
)
logger = logging.getLogger("hastack.daemon")
core_logger = logging.getLogger("hastack.membership")


def default_node_name() -> str:
    """A node's name is `uname -n`, as heartbeat has it."""
    return os.uname().nodename


def resolve_run_dir(config: ClusterConfig) -> Path:
    """ha.cf's run_dir; a relative one is taken relative to the configuration directory."""
    return Path(config.directory) / config.hacf.run_dir


def load(config_dir: str) -> ClusterConfig:
    from hastack.config.directory import load_config

    return load_config(config_dir)


def check_node(config: ClusterConfig, node: str) -> str | None:
    """An error message when `node` is not one of the configuration's nodes."""
    names = [spec.name for spec in config.hacf.nodes]
    if node in names:
        return None
    return (
        f"node {node!r} is not in {config.hacf.file} (its nodes: {', '.join(names) or 'none'}); "
        "name this machine's node with --node NAME or add a `node` line"
    )


class NodeDaemon:
    def __init__(
        self,
        config_dir: str,
        config: ClusterConfig,
        name: str,
        rundir: NodeRunDir,
        generation: int,
        cib: LoadedCib | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.config = config
        self.name = name
        self.rundir = rundir
        self.generation = generation
        self.core = MembershipCore(CoreParams.from_config(config), name, generation, clock.now())
        self.links: list[LinkEndpoint] = []
        self._polled: list[LinkEndpoint] = []
        self.pinger: IcmpPinger | None = None
        # The resource manager (None: membership only, for tests of the membership layer)
        self.crm: CrmShell | None = None
        if cib is not None:
            self.crm = CrmShell(
                config,
                name,
                generation,
                rundir.path,
                cib,
                lambda: [e for e in self.links if not e.reads_on_timer],
            )
        # the quorum server's client (ha.cf quorum_server), started with the loop
        self.qlink: QuorumLink | None = None
        self._q_until: float | None = None
        if config.hacf.quorum_server is not None:
            tls = None
            if config.hacf.quorum_server_tls is not None:
                cert, key, ca = config.hacf.quorum_server_tls
                try:
                    tls = client_tls(cert, key, ca, check_hostname=False)
                except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                    raise ConfigError(
                        [
                            ConfigProblem(
                                None,
                                f"quorum_server_tls: cannot use certificate {cert}, key {key} "
                                f"and CA {ca}: {exc}",
                            )
                        ]
                    ) from None
            self.qlink = QuorumLink.from_config(
                config, name, tls=tls, on_change=self._on_quorum_vote
            )
        handlers: dict[str, Handler] = {
            "status": self._cmd_status,
            "counters": self._cmd_counters,
            "quorum": self._cmd_quorum,
            "version": lambda _request: {"version": __version__, "node": self.name},
        }
        if self.crm is not None:
            self.crm.on_local_fence = self._local_fence_done
            self.crm.fence.quorum_check = lambda since: self.core.quorum_acked_since(
                since, clock.now()
            )
            handlers["fence"] = self._cmd_fence
            handlers["health"] = self._cmd_health
            handlers["cib-query"] = lambda _request: self._crm().cib_query()
            handlers["cib-apply"] = self._cmd_cib_apply
            handlers["resource-request"] = self._cmd_cib_apply
        self.control = ControlServer(rundir.control_path, handlers)
        self.wall_watch = clock.WallClockWatch()
        self.core_errors = 0
        self._stop = asyncio.Event()
        # The one timer, armed at the core's next deadline; re-armed only when that moves, so
        # a datagram that changes no deadline costs no timer work.
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._fatal: BaseException | None = None
        # UDP links are drained on a timer, not on arrival (see Timing.read_interval); a
        # millisecond floor keeps a degenerate timing from spinning the loop.
        self._read_interval = max(0.001, self.core.timing.read_interval)
        self._next_read = INF  # no link to read until the links are open
        self._last_read = -INF
        self._no_pinger_logged = False
        self._fence_warned: set[str] = set()
        self._fence_waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}

    # ---- running ---------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        hacf = self.config.hacf
        emit(
            logger,
            "info",
            "daemon-start",
            f"hastack {__version__} node {self.name} starting (generation {self.generation}, "
            f"pid {os.getpid()})",
            node=self.name,
            generation=self.generation,
            config=self.config_dir,
            run_dir=str(self.rundir.path),
        )
        for warning in self.config.warnings:
            emit(logger, "warning", "config-warning", str(warning))
        await self._open_links()
        if self.crm is not None:
            await self.crm.open()
        if hacf.ping or hacf.ping_groups:
            await self._open_pinger()
        if self.qlink is not None:
            self.qlink.start()
        await self.control.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        try:
            self._execute(self.core.start(clock.now()))
            self._arm()
            await self._stop.wait()
            if self.crm is not None:
                # the resources leave first (moved by the DC, or stopped here), then the node
                await self.crm.shutdown()
            if self._timer is not None:
                self._timer.cancel()
            if self._fatal is None:
                self._execute(self.core.leave(clock.now()))
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await self.control.close()
            if self.qlink is not None:
                await self.qlink.close()
            for endpoint in self.links:
                endpoint.close()
            if self.pinger is not None:
                self.pinger.close()
        if self._fatal is not None:
            emit(
                logger, "error", "daemon-fatal", f"stopping after an internal error: {self._fatal}"
            )
            return 1
        emit(logger, "info", "daemon-stop", f"node {self.name} stopped")
        return 0

    async def _open_links(self) -> None:
        for link in self.config.hacf.links:
            endpoint = endpoint_for(link, self._on_datagram)
            endpoint.on_batch_end = self._arm
            try:
                await endpoint.open()
            except OSError as exc:
                # One broken medium is a warning: the others may still carry the heartbeat.
                emit(
                    logger,
                    "error",
                    "link-open-failed",
                    f"cannot open link {link.name}: {exc.strerror or exc}",
                    link=link.name,
                )
                continue
            self.links.append(endpoint)
            emit(logger, "info", "link-open", f"link {link.name} open", link=link.name)
        if not self.links:
            emit(logger, "error", "no-links", "no heartbeat link could be opened: node is alone")
        self._polled = [endpoint for endpoint in self.links if endpoint.reads_on_timer]
        if self._polled:
            self._next_read = clock.now()

    async def _open_pinger(self) -> None:
        pinger = IcmpPinger(self._on_ping_reply)
        try:
            await pinger.open()
        except OSError as exc:
            emit(logger, "error", "ping-unavailable", f"ping nodes cannot be checked: {exc}")
            return
        self.pinger = pinger

    def _request_stop(self, signum: int) -> None:
        emit(logger, "info", "signal", f"received {signal.Signals(signum).name}: leaving")
        self._stop.set()

    def _arm(self) -> None:
        """Arm the timer at the core's next deadline or the next read of the links, whichever
        comes first, unless it is armed there already."""
        deadline = min(self.core.next_deadline(), self._next_read)
        if deadline == self._armed_for or self._stop.is_set():
            return
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        self._timer = None
        if deadline != float("inf"):
            delay = max(0.0, deadline - clock.now())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        """Read every link, then call core.tick if its deadline has passed on the node's
        clock: whatever woke the node, the core sees all that arrived before it decides."""
        self._timer = None
        deadline, self._armed_for = self._armed_for, None
        now = clock.now()
        if deadline is not None and now < deadline:
            self._arm()  # the loop's clock ran ahead of ours: wait the rest
            return
        self._check_wall_clock()
        if self._polled:
            self._read_links(now)
        if now >= self.core.next_deadline():
            try:
                effects = self.core.tick(now)
            except Exception as exc:  # the core failed on a timer: we cannot go on safely
                logger.exception("membership core failed in tick()")
                self._fatal = exc
                self._stop.set()
                return
            self._execute(effects)
        if self.qlink is not None:
            self._sync_quorum_device(now)
        if self.crm is not None:
            self.crm.membership(self.core.crm_view(now))
        self._arm()

    def _sync_quorum_device(self, now: float) -> None:
        """Report our membership to the quorum server's client (it sends only changes and
        its heartbeats) and give the membership core the vote as the client holds it now."""
        assert self.qlink is not None
        members, ring = self.core.members(now)
        if self.name in members:
            resources = len(self.crm.controller.local_running()) if self.crm is not None else 0
            try:
                self.qlink.set_membership(members, ring, resources)
            except ValueError as exc:  # a view the client cannot report: no vote meanwhile
                logger.warning("quorum server: %s", exc)
        until = self.qlink.core.vote_until if self.qlink.has_vote(now) else None
        if until != self._q_until:
            self._q_until = until
            self._execute(self.core.quorum_device(until, now))

    def _on_quorum_vote(self, vote: bool, reason: str) -> None:
        emit(
            logger,
            "info" if vote else "warning",
            "quorum-server-vote",
            f"the quorum server's vote is {'ours' if vote else 'not ours'}: {reason}",
            vote=vote,
        )
        now = clock.now()
        self._sync_quorum_device(now)
        if self.crm is not None:
            self.crm.membership(self.core.crm_view(now))
        self._arm()

    def _read_links(self, now: float) -> None:
        """Hand the core every datagram the UDP links received since the last read, in
        order of arrival across the links, each with its arrival on the node's clock."""
        self._next_read = now + self._read_interval
        # The kernel stamps arrivals on the wall clock; this is the offset to ours. A wall
        # clock step between an arrival and now would shift that arrival, so it is kept
        # between the previous read and now: it only ever moves a liveness stamp by at most
        # one read interval, never the time a vote is granted (that is `now`).
        to_node_clock = now - clock.wall()
        since = self._last_read
        self._last_read = now
        batch: list[tuple[float, str, bytes]] = []
        for endpoint in self._polled:
            link = endpoint.name
            for stamp, data in endpoint.drain():
                if stamp is None:
                    arrived = now
                else:
                    arrived = stamp + to_node_clock
                    arrived = since if arrived < since else now if arrived > now else arrived
                batch.append((arrived, link, data))
        if len(self._polled) > 1:
            batch.sort(key=_arrival)
        for arrived, link, data in batch:
            self._deliver(data, link, now, arrived)

    def _check_wall_clock(self) -> None:
        jump = self.wall_watch.check(clock.now(), clock.wall())
        if jump is not None:
            emit(
                logger,
                "warning",
                "wall-clock-jump",
                f"the wall clock jumped {jump:+.3f} s (timers are unaffected: they use "
                "CLOCK_BOOTTIME; log timestamps around here are shifted)",
                jump_s=round(jump, 3),
            )

    # ---- events ----------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, link: str) -> None:
        """A datagram from a link that delivers as it reads (serial); the link calls _arm
        once it has delivered what it read."""
        now = clock.now()
        if self.crm is not None and is_message_datagram(data):
            self.crm.on_shared_datagram(data, link)
            return
        self._deliver(data, link, now, now)
        if self.crm is not None:
            self.crm.membership(self.core.crm_view(now))

    def _deliver(self, data: bytes, link: str, now: float, arrived: float) -> None:
        try:
            effects = self.core.receive(data, link, now, arrived)
        except Exception:
            # The core's contract is to count bad input, never raise; if it does anyway, drop
            # this one datagram and say so rather than lose the node.
            self.core_errors += 1
            logger.exception("membership core failed on a datagram from link %s", link)
            return
        if effects:  # most heartbeats change state but ask for nothing
            self._execute(effects)

    def _on_ping_reply(self, target: str) -> None:
        self._execute(self.core.ping_reply(target, clock.now()))
        self._arm()

    def _execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                for endpoint in self.links:
                    endpoint.send(effect.data)
            elif isinstance(effect, SendPing):
                if self.pinger is not None:
                    self.pinger.ping(effect.target)
            elif isinstance(effect, Fence):
                self._fence(effect.target)
            elif isinstance(effect, Log):
                emit(core_logger, effect.level, effect.event, effect.message, effect.fields)

    def _fence(self, target: str) -> None:
        if self.crm is not None and not self.crm.controller.fencing_enabled():
            # stonith-enabled=false, as in Pacemaker: a lost node is taken to be down without
            # fencing. Said loudly, because if it is alive both sides may run its resources.
            emit(
                logger,
                "warning",
                "fence-disabled",
                f"node {target} is taken as down WITHOUT fencing (stonith-enabled=false): if "
                "it is still running, its resources may run twice",
                node=target,
            )
            self._execute(self.core.fence_done(target, True, clock.now()))
            return
        if self.crm is None:
            emit(
                logger,
                "error",
                "fence-not-configured",
                f"node {target} must be fenced but this node runs no resource manager (and so "
                "no fencer): it stays waiting",
                node=target,
            )
            return
        crm = self.crm
        crm.fence.request(
            target,
            "reboot",
            "membership",
            f"two_node: peer {target} lost",
            delay=crm.controller.fence_delay(target),
        )

    def _local_fence_done(self, record: FenceRecord) -> None:
        """This node's fencer finished an operation: the operators waiting for it get the
        record, and the membership core hears whether the node is down. A failure reaches
        the membership core (which asks again) only FENCE_RETRY later, so a device that
        fails at once does not make a busy loop of it."""
        target, ok = record.target, record.state == "done"
        for waiter in self._fence_waiters.pop(target, []):
            if not waiter.done():
                waiter.set_result({"ok": ok, "record": record.to_json()})
        if record.action == "on":
            return
        if target not in self.core.fence_pending and not (ok and self.core.params.two_node):
            # The membership layer did not ask: it is not told. It would count the fenced
            # node's vote for this side until it hears the node again, while the node, up
            # again behind a partition, votes on the other side (two DCs: found by the
            # simulator). Two-node clusters count it: their peer's vote is the only other.
            return
        if ok:
            self._execute(self.core.fence_done(target, True, clock.now()))
            self._arm()
            return

        def retry() -> None:
            self._execute(self.core.fence_done(target, False, clock.now()))
            self._arm()

        asyncio.get_running_loop().call_later(FENCE_RETRY, retry)

    # ---- control commands ------------------------------------------------------------------

    def _cmd_status(self, _request: dict[str, Any]) -> dict[str, Any]:
        status = self.core.status(clock.now()).to_json()
        if self.crm is not None:
            status["fencing"] = self.crm.fence.describe()
            if self.crm.watchdog is not None:
                status["watchdog"] = self.crm.watchdog.describe()
        return status

    def _cmd_health(self, _request: dict[str, Any]) -> dict[str, Any]:
        """The cluster's measure of this node's health, the one its watchdog guard weighs:
        quorate, and the resources running here (`hastack watchdog` asks it before a reset,
        to wait until the node runs nothing)."""
        crm = self._crm()
        quorate, running = crm.health()
        watchdog = crm.watchdog.describe() if crm.watchdog is not None else None
        return {
            "node": self.name,
            "quorate": quorate,
            "running": list(running),
            "watchdog": watchdog,
        }

    def _cmd_quorum(self, request: dict[str, Any]) -> dict[str, Any]:
        """hastack quorum force|unforce: override the expected votes with those of the
        nodes this node sees now (or undo it), as corosync-quorumtool -e does."""
        op = request.get("op")
        now = clock.now()
        if op == "force":
            self._execute(self.core.force_quorum(True, now))
        elif op == "unforce":
            self._execute(self.core.force_quorum(False, now))
        elif op != "show":
            return {"error": f"unknown quorum op {op!r}; known: force, unforce, show"}
        if self.crm is not None:
            self.crm.membership(self.core.crm_view(now))
        self._arm()
        status = self.core.status(now)
        return {
            "node": self.name,
            "quorate": status.quorate,
            "votes": status.votes,
            "expected_votes": status.expected_votes,
            "quorum": status.quorum,
            "forced": status.forced_expected_votes is not None,
            "quorum_device_vote": status.quorum_device_vote,
            "quorum_server": self.qlink.status() if self.qlink is not None else None,
        }

    async def _cmd_fence(self, request: dict[str, Any]) -> dict[str, Any]:
        """hastack fence: history, test, confirm, or fence a node (reboot/off/on)."""
        fence = self._crm().fence
        op = request.get("op")
        target = request.get("target")
        if target is not None and (not isinstance(target, str) or target not in fence.nodes):
            return {"error": f"unknown node {target!r}; the nodes: {', '.join(fence.nodes)}"}
        if op == "history":
            return {"node": self.name, "history": fence.history(target)}
        if op == "test":
            targets = [target] if target else [n for n in fence.nodes if n != self.name]
            return await fence.test(targets)
        if op == "paths":
            return fence.describe()
        if target is None:
            return {"error": f"fence {op}: name the node (target)"}
        if op == "confirm":
            record = fence.confirm(target, f"operator on {self.name}")
            return {"record": record.to_json()}
        if op in ("reboot", "off", "on"):
            if target == self.name:
                return {"error": "a node does not fence itself on request; ask another node"}
            done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            waiters = self._fence_waiters.setdefault(target, [])
            waiters.append(done)
            fence.request(target, op, f"operator on {self.name}", "requested by an operator")
            timeout = request.get("timeout", 600)
            try:
                return await asyncio.wait_for(done, float(timeout))
            except TimeoutError:
                return {"error": f"no result for fencing {target} within {timeout} s"}
            finally:
                if done in waiters:
                    waiters.remove(done)
        return {
            "error": f"unknown fence op {op!r}; known: history, test, paths, confirm, reboot, "
            "off, on"
        }

    def _crm(self) -> CrmShell:
        assert self.crm is not None
        return self.crm

    async def _cmd_cib_apply(self, request: dict[str, Any]) -> dict[str, Any]:
        operation = request.get("operation")
        if not isinstance(operation, dict):
            return {"error": 'the request needs an "operation" object'}
        return await self._crm().request(operation)

    def _cmd_counters(self, _request: dict[str, Any]) -> dict[str, Any]:
        return {
            "node": self.name,
            "core": dict(self.core.counters),
            "core_errors": self.core_errors,
            "links": {endpoint.name: endpoint.describe() for endpoint in self.links},
            "ping": self.pinger.describe() if self.pinger is not None else None,
            "control": {
                "requests": self.control.requests,
                "bad_requests": self.control.bad_requests,
            },
            "crm": self.crm.describe() if self.crm is not None else None,
        }

    # ---- SIGHUP ----------------------------------------------------------------------------

    def _reload(self) -> None:
        emit(logger, "info", "reload", f"received SIGHUP: re-reading {self.config_dir}")
        try:
            new = load(self.config_dir)
        except ConfigError as exc:
            for problem in exc.problems:
                emit(logger, "error", "reload-error", str(problem))
            emit(logger, "warning", "reload-rejected", "keeping the running configuration")
            return
        problem = check_node(new, self.name)
        if problem is not None:
            emit(logger, "error", "reload-error", problem)
            emit(logger, "warning", "reload-rejected", "keeping the running configuration")
            return
        changed = config_changes(self.config, new)
        if not changed:
            emit(logger, "info", "reload-unchanged", "configuration unchanged")
            return
        emit(
            logger,
            "warning",
            "reload-restart-required",
            f"restart required for changes to {', '.join(changed)}",
            changed=changed,
        )


def _arrival(item: tuple[float, str, bytes]) -> float:
    return item[0]


def config_changes(old: ClusterConfig, new: ClusterConfig) -> list[str]:
    """The ha.cf directives (and `authkeys`) whose values differ, ignoring file positions."""
    before, after = _comparable(old.hacf), _comparable(new.hacf)
    changed: list[str] = []
    for key, value in before.items():
        other = after.get(key)
        if value == other:
            continue
        if isinstance(value, dict) and isinstance(other, dict):  # e.g. timing.deadtime
            changed += [f"{key}.{k}" for k in value if value[k] != other.get(k)]
        else:
            changed.append(key)
    if _keys(old) != _keys(new):
        changed.append("authkeys")
    return changed


def _comparable(hacf: Any) -> dict[str, Any]:
    data = dataclasses.asdict(hacf)
    for key in ("file", "warnings"):
        data.pop(key, None)
    return _strip_sources(data)


def _strip_sources(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_sources(v) for k, v in value.items() if k != "source"}
    if isinstance(value, list | tuple):
        return [_strip_sources(v) for v in value]
    return value


def _keys(config: ClusterConfig) -> tuple[int, dict[int, tuple[str, bytes]]]:
    keys = config.authkeys.keys
    return config.authkeys.active, {i: (k.method, k.key) for i, k in keys.items()}


def print_problems(config_dir: str, problems: list[Any]) -> None:
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    print(f"hastack: configuration {config_dir} has {count} {noun}:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def start(config_dir: str, node: str | None = None) -> int:
    """Run a node until SIGTERM/SIGINT; the exit code of `hastack node start`."""
    try:
        config = load(config_dir)
    except ConfigError as exc:
        print_problems(config_dir, exc.problems)
        return 1
    name = node or default_node_name()
    problem = check_node(config, name)
    if problem is not None:
        print(f"hastack: {problem}", file=sys.stderr)
        return 1
    hacf = config.hacf
    problems = logsetup.configure(name, hacf.logfile, hacf.debugfile, debug=hacf.debug > 0)
    for text in problems:
        emit(logger, "warning", "log-file-error", text)
    if hacf.realtime:
        for text in realtime.apply():
            emit(logger, "warning", "realtime-unavailable", text)
    rundir = NodeRunDir(resolve_run_dir(config), name)
    try:
        rundir.create()
        rundir.lock()
    except AlreadyRunning as exc:
        print(f"hastack: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"hastack: cannot use run directory {rundir.path}: {exc}", file=sys.stderr)
        return 1
    try:
        generation = rundir.bump_generation()
        rundir.write_pid()
        # Agents keep their state under HA_RSCTMP and pid files under HA_VARRUN; each node gets
        # its own, so that several nodes sharing one filesystem (the lab) never see each
        # other's resources as running. An HA_RSCTMP given by the environment is kept.
        os.environ.setdefault("HA_RSCTMP", str(rundir.path / "rsctmp"))
        os.environ.setdefault("HA_VARRUN", str(rundir.path / "varrun"))
        # resource-agents expect both to exist (systemd-tmpfiles makes /run/resource-agents;
        # ha_pseudo_resource's state file cannot be made in a missing directory)
        for variable in ("HA_RSCTMP", "HA_VARRUN"):
            Path(os.environ[variable]).mkdir(parents=True, exist_ok=True)
        cib = load_cib(config, rundir.path / "cib.xml")
        emit(logger, "info", "cib-loaded", f"resources from {cib.origin}")
        daemon = NodeDaemon(config_dir, config, name, rundir, generation, cib)
        return asyncio.run(daemon.run())
    except ConfigError as exc:
        print_problems(config_dir, exc.problems)
        return 1
    except OSError as exc:
        print(f"hastack: cannot start node {name}: {exc}", file=sys.stderr)
        return 1
    finally:
        rundir.cleanup()
