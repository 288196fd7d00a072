"""`hastack mon serve`: the mon server, the thin asyncio shell around the sans-IO parts.

One event loop does what mon 1.3's main loop does, without polling: it sleeps until the
scheduler's next due monitor (:mod:`.schedule`) or the alert logic's next timer
(:mod:`.alerting`: trap timeouts and durations), or until something happens — a monitor ends, a
trap arrives (UDP, :mod:`.trap`), a client asks (TCP, :mod:`.protocol` with :mod:`.auth`).
Monitors and alerts run as mon runs them (:mod:`.runner`), each in its own process group, a
monitor never twice at once. Every decision (run a monitor? with which hosts? alert whom?) is
the cores'; this module only carries them out and answers the client protocol
(:class:`MonServer` is protocol.MonServerAPI).

SIGTERM and SIGINT stop it cleanly (running monitors and alerts are killed with their
process groups); SIGHUP re-reads mon.cf as `reset keepstate` does (a file with errors is
refused and the running configuration kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hastack import __version__
from hastack.mon import alerting, builtin, runner
from hastack.mon.alerting import AlertCall, Alerter, AlertingError, Status
from hastack.mon.auth import (
    AuthConfigError,
    Authenticator,
    AuthTable,
    check_authtypes,
    client_allowed,
    load_auth,
)
from hastack.mon.builtin import monitors as builtin_monitors
from hastack.mon.config import MonConfigError, load
from hastack.mon.model import MonConfig, Service
from hastack.mon.protocol import (
    AlertHistEntry,
    AlertKind,
    ClientSession,
    CommandError,
    FailureHistEntry,
    Hostgroup,
    OpStatus,
    RunningMonitor,
    serve_client,
)
from hastack.mon.schedule import Key, Scheduler
from hastack.mon.trap import TrapError, decode_trap

log = logging.getLogger("hastack.mon")
DEFER = 1.0  # seconds: a monitor held back (exclude_period, dependency) is looked at again


class ServerError(Exception):
    """The server cannot start (said with what and why)."""


@dataclass
class _Stats:
    """What `hastack mon status` and the benchmark read."""

    monitors_started: int = 0
    monitors_failed: int = 0
    alerts_run: int = 0
    alerts_failed: int = 0
    traps: int = 0
    traps_refused: int = 0
    lags: list[float] = field(default_factory=list)  # seconds late, per monitor start


class _TrapProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: MonServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.server.trap(data, addr[0])


class MonServer:
    def __init__(self, cfg: MonConfig, *, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.rng = rng or random.Random()
        self.alerter = Alerter(cfg, time.time())
        self.scheduler = Scheduler(cfg, time.monotonic(), self.rng)
        self.auth = Authenticator(self._load_auth(cfg), cfg)
        self.stats = _Stats()
        self.started = time.time()
        self.stopped_at: float | None = None
        self.variables: dict[tuple[str, str, str], str] = {}
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._pids: dict[Key, int] = {}
        self._alerts: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._servers: list[asyncio.AbstractServer] = []
        self._trap_transport: asyncio.DatagramTransport | None = None
        self.tcp_port: int | None = None
        self.udp_port: int | None = None

    # --- life cycle ----------------------------------------------------------------------

    @staticmethod
    def _load_auth(cfg: MonConfig) -> AuthTable:
        check_authtypes(cfg.authtype, f"{cfg.source}: authtype")
        path = cfg.authfile
        if not os.path.isabs(path):
            path = os.path.join(cfg.cfbasedir, path)
        if not os.path.exists(path):
            # mon refuses to start without it too: every command's permission is there
            raise ServerError(
                f"{cfg.source}: authfile {path} does not exist: mon needs one (Debian's "
                "/etc/mon/auth.cf is a start: `list`, `test` and `servertime` for all)"
            )
        try:
            table = load_auth(path)
        except AuthConfigError as exc:
            raise ServerError(str(exc)) from None
        for warning in table.warnings:
            log.warning("%s", warning)
        return table

    async def start(self) -> None:
        """Bind the client (TCP) and trap (UDP) ports and send the startup alerts."""
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        trap_host = cfg.trapbind or "0.0.0.0"
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _TrapProtocol(self), local_addr=(trap_host, cfg.trapport)
            )
        except OSError as exc:
            raise ServerError(f"cannot listen on {trap_host}:{cfg.trapport} (UDP): {exc}") from None
        self._trap_transport = transport  # type: ignore[assignment]
        self.udp_port = transport.get_extra_info("sockname")[1]
        # TCP last: once a client can connect, traps are taken too
        host = cfg.serverbind or "0.0.0.0"
        try:
            server = await asyncio.start_server(
                lambda r, w: serve_client(r, w, self._session, cfg.cltimeout),
                host,
                cfg.serverport,
                reuse_address=True,
            )
        except OSError as exc:
            transport.close()
            raise ServerError(f"cannot listen on {host}:{cfg.serverport} (TCP): {exc}") from None
        self._servers.append(server)
        self.tcp_port = server.sockets[0].getsockname()[1]
        self._write_pidfile()
        self._dispatch(self.alerter.startup(time.time(), datetime.now()))
        log.info(
            "serving %d service(s) in %d watch(es); clients on TCP %s:%d, traps on UDP %s:%d",
            sum(len(w.services) for w in cfg.watches.values()),
            len(cfg.watches),
            host,
            self.tcp_port,
            trap_host,
            self.udp_port,
        )

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or a client's `term`); 0 after a clean stop."""
        loop = asyncio.get_running_loop()
        try:
            await self.start()
        except ServerError as exc:
            log.error("%s", exc)
            return 1
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        try:
            await self._main_loop()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await self.close()
        return 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        if self._trap_transport is not None:
            self._trap_transport.close()
        tasks = list(self._running.values()) + list(self._alerts)
        for task in tasks:
            task.cancel()  # the runner kills the process group of a cancelled run
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.cfg.pidfile:
            with contextlib.suppress(OSError):
                os.unlink(self.cfg.pidfile)
        log.info("stopped")

    def _write_pidfile(self) -> None:
        if not self.cfg.pidfile:
            return
        try:
            Path(self.cfg.pidfile).write_text(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("cannot write the pidfile %s: %s", self.cfg.pidfile, exc.strerror)

    def _sighup(self) -> None:
        log.info("SIGHUP: reading %s again", self.cfg.source)
        self.reset(stopped=False, keepstate=True)

    # --- the main loop -------------------------------------------------------------------

    async def _main_loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self.stopped_at is None:
                for key in self.scheduler.due(now):
                    self._start_monitor(key, now)
            self._dispatch(self.alerter.tick(time.time(), datetime.now()))
            wake = self._next_wakeup(time.monotonic())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wake)

    def _next_wakeup(self, now: float) -> float | None:
        """Seconds until there is something to do; None: only an event can bring work."""
        times = [self.scheduler.next_wakeup() - now]
        deadline = self.alerter.next_deadline()
        if deadline is not None:
            times.append(deadline - time.time())
        if self.cfg.exclude_period:
            times.append(DEFER)  # the global exclude_period is a time of day: look again
        finite = [t for t in times if t != float("inf")]
        return max(0.0, min(finite)) if finite else None

    def _start_monitor(self, key: Key, now: float) -> None:
        watch, service = key
        plan = self.alerter.plan_monitor(watch, service, time.time(), datetime.now())
        if not plan.run:
            if "no host" in plan.reason:
                self.scheduler.skipped(key, now)
            else:
                self.scheduler.defer(key, now + DEFER)
            log.debug("%s/%s not run: %s", watch, service, plan.reason)
            return
        self.stats.lags.append(self.scheduler.started(key, now))
        self.alerter.monitor_started(watch, service, time.time())
        self.stats.monitors_started += 1
        task = asyncio.get_running_loop().create_task(self._monitor(key, list(plan.hosts)))
        self._running[key] = task

    async def _monitor(self, key: Key, hosts: list[str]) -> None:
        watch, service = key
        svc = self.cfg.watches[watch].services[service]
        state = self.alerter.state(watch, service)
        try:
            builtin = builtin_argv(svc, hosts)
            if builtin is not None:
                result = await self._run_builtin(builtin)
            else:
                result = await runner.run_monitor(
                    self.cfg,
                    watch,
                    svc,
                    hosts,
                    monitor_env(state),
                    self.cfg.monitor_timeout,
                    on_pid=lambda pid: self._pids.__setitem__(key, pid),
                )
        except runner.NoHosts as exc:
            log.info("%s", exc)
            state.monitor_running = False
            self.scheduler.skipped(key, time.monotonic())
            return
        except runner.RunnerError as exc:
            log.error("%s/%s: %s", watch, service, exc)
            state.monitor_running = False
            self.scheduler.defer(key, time.monotonic() + DEFER)
            return
        finally:
            self._running.pop(key, None)
            self._pids.pop(key, None)
            self._wake.set()
        if result.failed:
            self.stats.monitors_failed += 1
        calls = self.alerter.monitor_done(
            watch, service, result.exit_code, result.output, time.time(), datetime.now()
        )
        self.scheduler.finished(key, time.monotonic(), failed=result.exit_code != 0)
        self._dispatch(calls)

    async def _run_builtin(self, argv: list[str]) -> runner.MonitorResult:
        """hastack's own monitor, in this process (a thread: the checks block on sockets,
        each bounded by its own timeout) instead of a Python interpreter per check."""
        started = time.monotonic()
        timeout = self.cfg.monitor_timeout
        try:
            code, output = await asyncio.wait_for(
                asyncio.to_thread(builtin_monitors.run, argv), timeout
            )
        except TimeoutError:
            # the thread ends by the check's own timeout; its late answer is dropped
            summary = f"monitor timed out after {timeout:g} s"
            return runner.MonitorResult(
                runner.MONITOR_TIMEOUT_EXIT,
                summary,
                "",
                time.monotonic() - started,
                timed_out=True,
                output=summary + "\n",
                argv=tuple(argv),
            )
        summary, detail = runner.split_output(output)
        return runner.MonitorResult(
            code, summary, detail, time.monotonic() - started, output=output, argv=tuple(argv)
        )

    # --- alerts --------------------------------------------------------------------------

    def _dispatch(self, calls: Sequence[AlertCall]) -> None:
        loop = asyncio.get_running_loop()
        for call in calls:
            task = loop.create_task(self._alert(call))
            self._alerts.add(task)
            task.add_done_callback(self._alerts.discard)

    async def _alert(self, call: AlertCall) -> None:
        svc = self.cfg.watches[call.watch].services[call.service]
        argv, env = alerting.alert_argv_env(
            call,
            call.program,
            svc,
            self.cfg,
            statedir=self.cfg.statedir,  # the parser resolved them (basedir) already
            logdir=self.cfg.logdir,
        )
        try:
            result = await runner.run_alert(self.cfg, argv, env, call.output)
        except runner.RunnerError as exc:
            self.stats.alerts_failed += 1
            log.error("%s/%s: alert %s: %s", call.watch, call.service, call.program, exc)
            return
        self.stats.alerts_run += 1
        if result.failed:
            self.stats.alerts_failed += 1
            log.warning(
                "%s/%s: alert %s exited %s: %s",
                call.watch,
                call.service,
                " ".join(result.argv),
                result.exit_code,
                result.output.strip()[:200],
            )
        else:
            log.info("%s/%s: %s %s sent", call.watch, call.service, call.kind, call.program)

    # --- traps ---------------------------------------------------------------------------

    def trap(self, data: bytes, peer: str) -> None:
        """One datagram on the trap port."""
        self.stats.traps += 1
        try:
            trap = decode_trap(data)
        except TrapError as exc:
            self.stats.traps_refused += 1
            log.warning("trap from %s refused: %s", peer, exc)
            return
        if not self.auth.table.trap_allowed(peer, trap.usr, trap.pas):
            self.stats.traps_refused += 1
            log.warning("trap from %s (user %r) refused by %s", peer, trap.usr, self.cfg.authfile)
            return
        try:
            calls = self.alerter.trap_received(
                trap.grp,
                trap.svc,
                trap.sta,
                trap.sum,
                trap.dtl,
                time.time(),
                datetime.now(),
                traphost=peer,
            )
        except AlertingError as exc:
            self.stats.traps_refused += 1
            log.warning("trap from %s: %s", peer, exc)
            return
        self._dispatch(calls)
        self._wake.set()

    # --- clients -------------------------------------------------------------------------

    def _session(self, peer: str) -> ClientSession | None:
        if not client_allowed(self.cfg.clientallow, peer):
            log.info("client %s refused by clientallow", peer)
            return None
        return ClientSession(self, self.auth, peer)

    # MonServerAPI: identity and clock

    def now(self) -> float:
        return time.time()

    def pid(self) -> int:
        return os.getpid()

    def hostname(self) -> str:
        return socket.gethostname()

    # MonServerAPI: queries

    def watches(self) -> Mapping[str, Sequence[str]]:
        return {name: list(w.services) for name, w in self.cfg.watches.items()}

    def opstatus(self, group: str, service: str) -> OpStatus:
        svc = self.cfg.watches[group].services[service]
        st = self.alerter.state(group, service)
        key = (group, service)
        timer = self.scheduler.timer(key, time.monotonic()) if svc.interval else None

        def expand(text: str) -> str:
            return text.replace("SELF:", f"{group}:")

        return OpStatus(
            group=group,
            service=service,
            opstatus=int(st.op_status),
            last_opstatus=int(st.last_op_status),
            exitval="undef" if st.exitval is None else st.exitval,
            timer=None if timer is None else int(timer),
            last_success=st.last_success,
            last_trap=st.last_trap,
            last_traphost=st.last_traphost,
            last_check=st.last_check,
            ack=st.ack,
            ackcomment=st.ack_comment,
            alerts_sent=st.alerts_sent,
            depstatus=None if st.depend_status is None else int(st.depend_status),
            depend=expand(svc.depend),
            hostdepend=expand(svc.hostdepend),
            monitordepend=expand(svc.monitordepend),
            alertdepend=expand(svc.alertdepend),
            monitor=svc.monitor or "",
            last_summary=st.last_summary or "",
            last_detail=st.last_detail or "",
            last_failure=st.last_failure,
            interval=st.interval if st.interval is not None else svc.interval,
            monitor_duration=st.monitor_duration,
            monitor_running=st.monitor_running,
            exclude_period=svc.exclude_period,
            exclude_hosts=tuple(svc.exclude_hosts),
            randskew=svc.randskew,
            last_alert=st.last_alert,
            first_failure=st.first_failure,
            description=svc.description,
            disabled=st.disabled,
        )

    def watch_disabled(self, group: str) -> bool:
        return group in self.alerter.disabled_watches

    def hostgroups(self) -> Mapping[str, Hostgroup]:
        disabled = self.alerter.disabled_hosts
        return {
            name: Hostgroup(name, tuple(hosts), frozenset(h for h in hosts if h in disabled))
            for name, hosts in self.cfg.hostgroups.items()
        }

    def views(self) -> Mapping[str, frozenset[str]]:
        return {name: frozenset(members) for name, members in self.cfg.views.items()}

    def aliases(self) -> Mapping[str, Sequence[str]]:
        return self.cfg.aliases

    def has_period(self, group: str, service: str, period: str) -> bool:
        svc = self.cfg.watches[group].services[service]
        return any(p.label == period for p in svc.periods)

    def alert_history(self) -> Sequence[AlertHistEntry]:
        return [
            AlertHistEntry(
                call.kind,
                call.watch,
                call.service,
                int(call.time),
                call.program,
                " ".join(call.args),
                call.summary,
            )
            for call in self.alerter.alert_history
        ]

    def failure_history(self) -> Sequence[FailureHistEntry]:
        return [
            FailureHistEntry(watch, service, int(when), summary)
            for watch, service, when, summary in self.alerter.failure_history
        ]

    def running_monitors(self) -> Sequence[RunningMonitor]:
        return [RunningMonitor(g, s, pid) for (g, s), pid in self._pids.items()]

    def stopped_since(self) -> float | None:
        return self.stopped_at

    def dtlog(self) -> Sequence[str] | None:
        if not self.cfg.dtlogging:
            return None
        path = self.cfg.dtlogfile
        if not os.path.isabs(path):
            path = os.path.join(self.cfg.logdir, path)
        with open(path) as dtlog:
            return [line.rstrip("\n") for line in dtlog if not line.startswith("#")]

    def maxkeep(self) -> int:
        return self.cfg.histlength

    def get_variable(self, group: str, service: str, var: str) -> str | None:
        return self.variables.get((group, service, var))

    # MonServerAPI: actions

    def reset(self, stopped: bool, keepstate: bool) -> bool:
        """Read mon.cf again and start over (keepstate: the disabled and operational state
        carried over). A file with errors is refused: the running configuration stays."""
        if stopped:
            self.stop_scheduler()
        try:
            cfg = load(self.cfg.source)
            auth = self._load_auth(cfg)
        except (MonConfigError, ServerError, OSError) as exc:
            log.error(
                "reset refused, %s has errors (the running configuration stays):\n%s",
                self.cfg.source,
                exc,
            )
            return False
        for warning in cfg.warnings:
            log.warning("%s", warning)
        old = self.alerter
        self.cfg = cfg
        self.auth.table, self.auth.cfg = auth, cfg
        self.alerter = Alerter(cfg, time.time())
        self.scheduler = Scheduler(cfg, time.monotonic(), self.rng)
        if keepstate:
            self._carry_over(old)
        if self.stopped_at is not None:
            self.scheduler.stop(time.monotonic())
            self.alerter.stopped = True
        elif cfg.startupalerts_on_reset:
            self._dispatch(self.alerter.startup(time.time(), datetime.now()))
        log.info("reset: %s read again", cfg.source)
        self._wake.set()
        return True

    def _carry_over(self, old: Alerter) -> None:
        for st in old.states():
            if st.service not in self.cfg.watches.get(st.watch, _NO_WATCH).services:
                continue
            new = self.alerter.state(st.watch, st.service)
            for name in _KEPT_STATE:
                setattr(new, name, getattr(st, name))
            if st.disabled:
                self.scheduler.disable((st.watch, st.service))
        for watch in old.disabled_watches & set(self.cfg.watches):
            self.alerter.disable_watch(watch)
            self.scheduler.disable_watch(watch)
        known = {h for hosts in self.cfg.hostgroups.values() for h in hosts}
        kept = [h for h in old.disabled_hosts if h in known]
        if kept:
            self.alerter.disable_host(kept)

    def reload_auth(self) -> None:
        try:
            self.auth.table = self._load_auth(self.cfg)
        except ServerError as exc:
            log.error("reload auth refused, the old table stays: %s", exc)
            raise CommandError(str(exc)) from None

    def clear_timers(self, group: str, service: str) -> None:
        self.scheduler.clear_timers((group, service), time.monotonic())
        self._wake.set()

    def test_monitor(self, group: str, service: str) -> None:
        self.scheduler.force((group, service), time.monotonic())
        self._wake.set()

    def test_alert(
        self, kind: AlertKind, group: str, service: str, retval: str, period: str
    ) -> None:
        try:
            code = int(retval)
        except ValueError:
            raise CommandError(f"test {kind}: retval must be a number, not {retval!r}") from None
        try:
            calls = self.alerter.test_alert(group, service, kind, code, period, time.time())
        except AlertingError as exc:
            raise CommandError(str(exc)) from None
        self._dispatch(calls)

    def test_config(self) -> str:
        try:
            load(self.cfg.source)
        except (MonConfigError, OSError) as exc:
            return str(exc)
        return ""

    def save_state(self, what: str) -> None:
        """mon's `savestate disabled` (also after every enable and disable): the disabled
        hosts, watches and services, in mon's file format. A file that cannot be written is
        logged, as mon logs it; the command still completes."""
        if what == "opstatus":
            raise CommandError("savestate opstatus is not supported by hastack (disabled is)")
        if what not in ("disabled", "all"):
            raise CommandError(f"savestate: unknown state {what!r} (disabled, all)")
        lines = [f"disable host {h}" for h in sorted(self.alerter.disabled_hosts)]
        lines += [f"disable watch {w}" for w in sorted(self.alerter.disabled_watches)]
        lines += [
            f"disable service {st.watch} {st.service}"
            for st in self.alerter.states()
            if st.disabled
        ]
        path = Path(self.cfg.statedir, "disabled")
        try:
            path.write_text("".join(f"{line}\n" for line in lines))
        except OSError as exc:
            log.error("could not write to state file %s: %s", path, exc.strerror)

    def load_state(self, what: str) -> None:
        if what not in ("disabled", "all"):
            raise CommandError(f"loadstate: unknown state {what!r} (disabled, all)")
        path = Path(self.cfg.statedir, "disabled")
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise CommandError(f"could not read {path}: {exc.strerror}") from None
        for line in lines:
            words = line.split()
            if len(words) < 3 or words[0] != "disable":
                continue
            try:
                if words[1] == "host":
                    self.disable_host(" ".join(words[2:]))
                elif words[1] == "watch":
                    self.disable_watch(words[2])
                elif words[1] == "service" and len(words) == 4:
                    self.disable_service(words[2], words[3], None, alerts=False)
            except (CommandError, AlertingError, KeyError) as exc:
                log.error("%s: %s: %s", path, line, exc)

    def term(self) -> None:
        asyncio.get_running_loop().call_soon(self.stop)

    def stop_scheduler(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.time()
            self.scheduler.stop(time.monotonic())
            self.alerter.stopped = True

    def start_scheduler(self) -> None:
        if self.stopped_at is not None:
            self.stopped_at = None
            self.scheduler.start(time.monotonic())
            self.alerter.stopped = False
            self._wake.set()

    def set_maxkeep(self, value: int) -> None:
        self.cfg.histlength = value
        keep = max(value, 1)
        self.alerter.alert_history = deque(self.alerter.alert_history, maxlen=keep)
        self.alerter.failure_history = deque(self.alerter.failure_history, maxlen=keep)

    def set_opstatus(self, group: str, service: str, status: int) -> None:
        st = self.alerter.state(group, service)
        st.last_op_status, st.op_status = st.op_status, Status(status)

    def set_variable(self, group: str, service: str, var: str, value: str) -> None:
        self.variables[(group, service, var)] = value

    def ack(self, group: str, service: str, comment: str) -> None:
        user, _, text = comment.partition(": ")
        try:
            calls = self.alerter.ack(group, service, text, time.time(), datetime.now(), user=user)
        except AlertingError as exc:
            raise CommandError(str(exc)) from None
        self._dispatch(calls)

    def disable_watch(self, group: str) -> None:
        try:
            self.alerter.disable_watch(group)
        except AlertingError as exc:
            raise CommandError(str(exc)) from None
        self.scheduler.disable_watch(group)

    def enable_watch(self, group: str) -> None:
        try:
            self.alerter.enable_watch(group)
        except AlertingError as exc:
            raise CommandError(str(exc)) from None
        self.scheduler.enable_watch(group)
        self._wake.set()

    def disable_service(
        self, group: str, service: str, user: str | None, *, alerts: bool = True
    ) -> None:
        calls = self.alerter.disable_service(
            group, service, time.time(), datetime.now(), user=user or ""
        )
        if alerts:
            self._dispatch(calls)

    def enable_service(self, group: str, service: str) -> None:
        self.alerter.enable_service(group, service)

    def disable_host(self, host: str) -> None:
        try:
            self.alerter.disable_host(host.split())
        except AlertingError as exc:
            raise CommandError(str(exc)) from None
        for watch in self.alerter.disabled_watches:
            self.scheduler.disable_watch(watch)

    def enable_host(self, host: str) -> None:
        self.alerter.enable_host(host.split())
        for watch in self.cfg.watches:
            if watch not in self.alerter.disabled_watches:
                self.scheduler.enable_watch(watch)
        self._wake.set()

    # --- hastack's own status --------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        lags = sorted(self.stats.lags)
        p99 = lags[max(0, -(-99 * len(lags) // 100) - 1)] if lags else None
        return {
            "pid": os.getpid(),
            "version": __version__,
            "config": self.cfg.source,
            "started": self.started,
            "stopped_scheduler": self.stopped_at is not None,
            "ports": {"tcp": self.tcp_port, "udp": self.udp_port},
            "services": sum(len(w.services) for w in self.cfg.watches.values()),
            "running_monitors": len(self._running),
            "monitors_started": self.stats.monitors_started,
            "monitors_failed": self.stats.monitors_failed,
            "alerts_run": self.stats.alerts_run,
            "alerts_failed": self.stats.alerts_failed,
            "traps": self.stats.traps,
            "traps_refused": self.stats.traps_refused,
            "lag_p99": p99,
            "lag_max": lags[-1] if lags else None,
        }


# What `reset keepstate` carries over from a service's old state (mon keeps its %watch
# entries' run-time fields through a reset).
_KEPT_STATE = (
    "op_status",
    "last_op_status",
    "last_check",
    "last_success",
    "last_failure",
    "first_failure",
    "consec_failures",
    "failure_count",
    "alert_count",
    "last_summary",
    "last_detail",
    "last_output",
    "exitval",
    "ack",
    "ack_comment",
    "last_trap",
    "last_traphost",
    "disabled",
)


class _NoWatch:
    services: dict[str, object] = {}


_NO_WATCH = _NoWatch()


def builtin_argv(svc: Service, hosts: list[str]) -> list[str] | None:
    """The built-in monitor's arguments when the service's monitor is one of hastack's own
    (`hastack-NAME.monitor`, the scripts `hastack mon install-monitors` writes): the server
    runs it in process. None for every other monitor, run as a program as mon does."""
    words = runner.split_words(svc.monitor or "")
    if not words:
        return None
    match = re.fullmatch(r"hastack-(\w+)\.monitor", os.path.basename(words[0]))
    if match is None or match.group(1) not in builtin.MONITORS:
        return None
    with_hosts = not runner.ends_without_hosts(svc.monitor or "")
    if with_hosts and not hosts and not svc.allow_empty_group:
        raise runner.NoHosts(f"monitor {words[0]} not called: no host arguments")
    args = [w for w in words[1:] if w != ";;"]
    return [match.group(1), *args, *(hosts if with_hosts else [])]


def monitor_env(st: alerting.ServiceState) -> dict[str, str]:
    """The MON_* variables mon's run_monitor sets from a service's state when they are
    defined (README.variables)."""
    env: dict[str, str] = {}
    if st.last_summary is not None:
        env["MON_LAST_SUMMARY"] = st.last_summary
    if st.last_output is not None:
        env["MON_LAST_OUTPUT"] = st.last_output
    env["MON_LAST_FAILURE"] = str(int(st.last_failure))
    if st.first_failure is not None:
        env["MON_FIRST_FAILURE"] = str(int(st.first_failure))
    if st.depend_status is not None:
        env["MON_DEPEND_STATUS"] = str(int(st.depend_status))
    env["MON_LAST_SUCCESS"] = str(int(st.last_success))
    return env
