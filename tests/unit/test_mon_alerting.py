"""mon's alert decision logic as a sans-IO core (hastack.mon.alerting), checked against the
rules mon(8) documents (ALERT DECISION LOGIC, period definitions, dependencies, traps) and
what mon 1.3's process_event/do_alert/call_alert do. The clock is simulated: every event
carries `now` (epoch seconds) and a local `when` for the periods."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hastack.mon.alerting import (
    AckRefused,
    AlertCall,
    Alerter,
    AlertFlag,
    DependSyntaxError,
    Status,
    UnknownHost,
    UnknownService,
    alert_argv_env,
    parse_depend,
)
from hastack.mon.model import (
    AlertEvery,
    AlertSpec,
    ExitRange,
    MonConfig,
    Period,
    Service,
    Watch,
)

T0 = 1_700_000_000.0
WHEN = datetime(2024, 1, 10, 12, 0, 0)  # a Wednesday, noon


def mail(*args: str, exit_range: ExitRange | None = None) -> AlertSpec:
    return AlertSpec("mail.alert", args or ("ops@example.org",), exit_range)


def period(**kw: object) -> Period:
    kw.setdefault("alerts", [mail()])
    return Period(label=str(kw.pop("label", "always")), spec=str(kw.pop("spec", "")), **kw)  # type: ignore[arg-type]


def config(*services: tuple[str, Service], **globals_: object) -> MonConfig:
    cf = MonConfig(**globals_)  # type: ignore[arg-type]
    cf.hostgroups = {"web": ["h1", "h2"], "net": ["gw"], "traps": ["traps"]}
    for watch, svc in services:
        cf.watches.setdefault(watch, Watch(watch)).services[svc.name] = svc
    return cf


def one(*periods: Period, now: float = T0, **svc: object) -> tuple[Alerter, str, str]:
    svc.setdefault("interval", 60.0)
    svc.setdefault("monitor", "http.monitor")
    service = Service(name="http", periods=list(periods), **svc)  # type: ignore[arg-type]
    return Alerter(config(("web", service)), now=now), "web", "http"


def fail(a: Alerter, now: float, out: str = "h1 down\ndetail", code: int = 1) -> list[AlertCall]:
    return a.monitor_done("web", "http", code, out, now=now, when=WHEN)


def ok(a: Alerter, now: float, out: str = "all fine\n") -> list[AlertCall]:
    return a.monitor_done("web", "http", 0, out, now=now, when=WHEN)


def kinds(calls: list[AlertCall]) -> list[str]:
    return [c.kind for c in calls]


# ---------------------------------------------------------------- statuses and accounting


def test_status_codes_are_mons():
    assert [int(s) for s in Status] == list(range(10))
    assert Status.FAIL == 0 and Status.OK == 1 and Status.UNTESTED == 7 and Status.WARN == 9


def test_failure_then_success_accounting():
    a, w, s = one(period())
    st = a.state(w, s)
    assert st.op_status == Status.UNTESTED and st.last_op_status == Status.UNTESTED
    fail(a, T0 + 60, "h1 down\nline 2\nline 3", code=2)
    assert st.op_status == Status.FAIL and st.last_op_status == Status.UNTESTED
    assert (st.consec_failures, st.failure_count, st.exitval) == (1, 1, 2)
    assert st.first_failure == T0 + 60 and st.last_failure == T0 + 60
    assert st.last_summary == "h1 down" and st.last_detail == "line 2\nline 3"
    fail(a, T0 + 120)
    assert st.first_failure == T0 + 60 and st.last_failure == T0 + 120
    assert (st.consec_failures, st.failure_count) == (2, 2)
    ok(a, T0 + 180, "fine\n")
    assert st.op_status == Status.OK and st.last_op_status == Status.FAIL
    assert (st.consec_failures, st.failure_count) == (0, 2)
    assert st.first_failure == 0 and st.last_failure == 0 and st.last_success == T0 + 180
    assert st.last_summary == "fine" and st.last_output == "fine\n"


def test_blank_summary_is_no_summary():
    a, w, s = one(period())
    calls = fail(a, T0, "\ndetail only")
    assert a.state(w, s).last_summary == "(NO SUMMARY)"
    assert calls[0].summary == "(NO SUMMARY)"


def test_alert_call_carries_what_the_shell_needs():
    a, w, s = one(period(alerts=[mail("a@x", "b@y")]))
    (call,) = fail(a, T0 + 5, "h1 down\nmore", code=3)
    assert (call.watch, call.service) == ("web", "http")
    assert (call.program, call.args) == ("mail.alert", ("a@x", "b@y"))
    assert call.kind == "alert" and call.flags == AlertFlag.MONITOR
    assert (call.summary, call.output, call.retval) == ("h1 down", "h1 down\nmore", 3)
    assert call.hosts == ("h1", "h2") and call.period_label == "always" and call.time == T0 + 5
    st = a.state(w, s)
    assert st.alert_count == 1 and st.alerts_sent == 1 and st.last_alert == T0 + 5


def test_every_failure_alerts_without_alertevery():
    a, _, _ = one(period())
    assert [len(fail(a, T0 + i * 60)) for i in range(4)] == [1, 1, 1, 1]


# ---------------------------------------------------------------- alertafter


def test_alertafter_consecutive():
    a, _, _ = one(period(alertafter_consec=3))
    assert [len(fail(a, T0 + i * 60)) for i in range(4)] == [0, 0, 1, 1]
    ok(a, T0 + 300)
    assert len(fail(a, T0 + 360)) == 0  # the count of consecutive failures starts again


def test_alertafter_num_within_interval():
    # "alertafter 2 10m": an alert once 2 failures happen within 10 minutes
    a, _, _ = one(period(alertafter=2, alertafter_interval=600.0), interval=300.0)
    assert len(fail(a, T0)) == 0
    assert len(fail(a, T0 + 300)) == 1
    assert len(fail(a, T0 + 360)) == 1


def test_alertafter_num_interval_restarts_when_it_expires():
    a, _, _ = one(period(alertafter=2, alertafter_interval=600.0), interval=300.0)
    ok(a, T0)
    assert len(fail(a, T0 + 100)) == 0
    ok(a, T0 + 200)
    # 800 s after the first failure: a new interval starts with this one as its first
    assert len(fail(a, T0 + 900)) == 0
    assert len(fail(a, T0 + 1000)) == 1


def test_alertafter_timeval_only_after_failing_that_long():
    a, _, _ = one(period(alertafter_interval=300.0))
    assert len(fail(a, T0)) == 0
    assert len(fail(a, T0 + 300)) == 0  # not more than 300 s yet
    assert len(fail(a, T0 + 301)) == 1
    ok(a, T0 + 400)
    assert len(fail(a, T0 + 500)) == 0  # success restarted the clock


# ---------------------------------------------------------------- alertevery


def test_alertevery_suppresses_the_same_summary():
    a, _, _ = one(period(alertevery=AlertEvery(3600.0)))
    assert len(fail(a, T0)) == 1
    assert len(fail(a, T0 + 60)) == 0
    assert len(fail(a, T0 + 3599)) == 0
    assert len(fail(a, T0 + 3600)) == 1


def test_alertevery_changed_summary_alerts_at_once():
    a, _, _ = one(period(alertevery=AlertEvery(3600.0)))
    assert len(fail(a, T0, "h1 down\nx")) == 1
    assert len(fail(a, T0 + 60, "h1 h2 down\nx")) == 1
    assert len(fail(a, T0 + 120, "h1 h2 down\ny")) == 0  # only the detail changed


def test_alertevery_observe_detail():
    a, _, _ = one(period(alertevery=AlertEvery(3600.0, observe_detail=True)))
    assert len(fail(a, T0, "h1 down\nx")) == 1
    assert len(fail(a, T0 + 60, "h1 down\nx")) == 0
    assert len(fail(a, T0 + 120, "h1 down\ny")) == 1


def test_alertevery_ignore_summary():
    a, _, _ = one(period(alertevery=AlertEvery(3600.0, ignore_summary=True)))
    assert len(fail(a, T0, "h1 down")) == 1
    assert len(fail(a, T0 + 60, "h2 down")) == 0


def test_alertevery_reset_by_success_but_not_when_strict():
    a, _, _ = one(period(alertevery=AlertEvery(3600.0)))
    fail(a, T0)
    ok(a, T0 + 60)
    assert len(fail(a, T0 + 120)) == 1
    b, _, _ = one(period(alertevery=AlertEvery(3600.0, strict=True)))
    assert len(fail(b, T0, "h1 down")) == 1
    assert len(fail(b, T0 + 60, "h2 down")) == 0  # strict: a new summary does not count
    ok(b, T0 + 120)
    assert len(fail(b, T0 + 180)) == 0  # nor does a recovery
    assert len(fail(b, T0 + 3600)) == 1


# ---------------------------------------------------------------- numalerts, exit ranges


def test_numalerts_stops_after_n_and_resets_on_success():
    a, _, _ = one(period(numalerts=2))
    assert [len(fail(a, T0 + i)) for i in range(4)] == [1, 1, 0, 0]
    ok(a, T0 + 10)
    assert len(fail(a, T0 + 20)) == 1


def test_exit_range_on_an_alert_line():
    p = period(alerts=[mail("sev2", exit_range=ExitRange(2, 2)), mail("any")])
    a, _, _ = one(p)
    assert [c.args for c in fail(a, T0, code=1)] == [("any",)]
    assert [c.args for c in fail(a, T0 + 1, code=2)] == [("sev2",), ("any",)]
    b, _, _ = one(period(alerts=[mail("mid", exit_range=ExitRange(10, 20))]))
    assert [len(fail(b, T0 + i, code=c)) for i, c in enumerate((9, 10, 20, 21))] == [0, 1, 1, 0]


def test_alertexitrange_on_the_period():
    a, _, _ = one(period(alertexitrange=ExitRange(2, 3)))
    assert len(fail(a, T0, code=1)) == 0
    assert len(fail(a, T0 + 1, code=3)) == 1


# ---------------------------------------------------------------- upalerts


def test_upalert_after_an_alerted_failure():
    a, w, s = one(period(upalerts=[mail("up")]))
    fail(a, T0, "h1 down\nd")
    (up,) = ok(a, T0 + 60, "fine\n")
    assert up.kind == "upalert" and up.flags == AlertFlag.UPALERT and up.retval == 0
    assert up.output == "h1 down\nd"  # the last failure's output, as mon passes it
    assert up.summary == "h1 down"
    assert ok(a, T0 + 120) == []  # only on the transition
    assert a.state(w, s).alerts_sent == 0


def test_no_upalert_without_a_prior_down_alert():
    a, _, _ = one(period(alertafter_consec=3, upalerts=[mail("up")]))
    fail(a, T0)
    assert ok(a, T0 + 60) == []


def test_no_comp_alerts_upalert_without_a_down_alert_once():
    a, _, _ = one(period(alertafter_consec=3, upalerts=[mail("up")], no_comp_alerts=True))
    fail(a, T0)
    assert kinds(ok(a, T0 + 60)) == ["upalert"]
    fail(a, T0 + 120)
    assert ok(a, T0 + 180) == []  # no second upalert until a down alert was sent again
    for i in range(3):
        fail(a, T0 + 200 + i)
    assert kinds(ok(a, T0 + 300)) == ["upalert"]


def test_no_upalert_from_untested():
    a, _, _ = one(period(upalerts=[mail("up")], no_comp_alerts=True))
    assert ok(a, T0) == []


def test_upalertafter_ignores_blips():
    a, _, _ = one(period(upalerts=[mail("up")], upalertafter=300.0))
    fail(a, T0)
    assert ok(a, T0 + 60) == []  # down for 60 s only
    fail(a, T0 + 120)
    fail(a, T0 + 300)
    assert kinds(ok(a, T0 + 420)) == ["upalert"]  # down for 300 s


# ---------------------------------------------------------------- periods


def test_periods_in_and_out():
    pytest.importorskip("hastack.mon.period", reason="hastack.mon.period is not written yet")
    weekdays = period(label="weekdays", spec="wd {Mon-Fri}", alerts=[mail("office")])
    weekend = period(label="weekend", spec="wd {Sat Sun}", alerts=[mail("pager")])
    a, _, _ = one(weekdays, weekend)
    wed = a.monitor_done("web", "http", 1, "down", now=T0, when=WHEN)
    sat = a.monitor_done("web", "http", 1, "down", now=T0 + 1, when=datetime(2024, 1, 13, 12))
    assert [(c.period_label, c.args) for c in wed] == [("weekdays", ("office",))]
    assert [(c.period_label, c.args) for c in sat] == [("weekend", ("pager",))]


def test_periods_keep_their_own_counters():
    quick = period(label="quick", alerts=[mail("now")])
    slow = period(label="slow", alerts=[mail("later")], alertafter_consec=2)
    a, _, _ = one(quick, slow)
    assert [c.period_label for c in fail(a, T0)] == ["quick"]
    assert [c.period_label for c in fail(a, T0 + 1)] == ["quick", "slow"]


def test_alerts_dont_count_in_alerts_sent():
    a, w, s = one(period(label="p1"), period(label="p2", alerts_dont_count=True))
    assert len(fail(a, T0)) == 2
    st = a.state(w, s)
    assert st.alerts_sent == 1 and st.alert_count == 2


# ---------------------------------------------------------------- startup, ack, disable


def test_startupalerts():
    a, _, _ = one(period(startupalerts=[mail("start")]))
    (call,) = a.startup(now=T0, when=WHEN)
    assert call.kind == "startupalert" and call.flags == AlertFlag.STARTUPALERT
    assert call.output == "" and call.retval == 0


def test_ack_suppresses_until_recovery_and_ackalert():
    a, w, s = one(period(ackalerts=[mail("ack")], upalerts=[mail("up")]))
    with pytest.raises(AckRefused, match="non-failure state"):
        a.ack(w, s, "looking", now=T0, when=WHEN, user="joe")
    fail(a, T0)
    (ackcall,) = a.ack(w, s, "looking at it", now=T0 + 10, when=WHEN, user="joe")
    assert ackcall.kind == "ackalert" and ackcall.flags == AlertFlag.ACKALERT
    assert ackcall.output == "joe: looking at it" and ackcall.retval is None
    st = a.state(w, s)
    assert st.ack == T0 + 10 and st.ack_comment == "joe: looking at it"
    assert fail(a, T0 + 60) == []
    assert kinds(ok(a, T0 + 120)) == ["upalert"]  # upalerts still go out
    assert st.ack == 0 and st.ack_comment == ""
    assert len(fail(a, T0 + 180)) == 1


def test_unack_summary_clears_the_ack_when_the_summary_changes():
    a, w, s = one(period(), unack_summary=True)
    fail(a, T0, "h1 down")
    a.ack(w, s, "", now=T0 + 1, when=WHEN, user="joe")
    assert fail(a, T0 + 60, "h1 down") == []
    assert len(fail(a, T0 + 120, "h1 h2 down")) == 1
    assert a.state(w, s).ack == 0


def test_disabled_service_no_alert_but_disablealert():
    a, w, s = one(period(disablealerts=[mail("dis")]))
    fail(a, T0)
    (dis,) = a.disable_service(w, s, now=T0 + 1, when=WHEN, user="joe")
    assert dis.kind == "disablealert" and dis.flags == AlertFlag.DISABLEALERT
    assert dis.output == "joe"
    assert fail(a, T0 + 60) == []
    assert a.state(w, s).failure_count == 2  # the monitor's result is still recorded
    a.enable_service(w, s)
    assert len(fail(a, T0 + 120)) == 1


def test_disabled_watch_no_alert_no_monitor():
    a, w, s = one(period())
    a.disable_watch(w)
    assert fail(a, T0) == []
    assert not a.plan_monitor(w, s, now=T0, when=WHEN).run
    a.enable_watch(w)
    assert a.plan_monitor(w, s, now=T0, when=WHEN).run


def test_disabled_host_leaves_the_monitor_and_alert_hosts():
    a, w, s = one(period())
    a.disable_host(["h1"])
    assert a.plan_monitor(w, s, now=T0, when=WHEN).hosts == ("h2",)
    assert fail(a, T0)[0].hosts == ("h2",)
    a.disable_host(["h2"])
    plan = a.plan_monitor(w, s, now=T0, when=WHEN)
    assert not plan.run and "no host" in plan.reason
    a.enable_host(["h1", "h2"])
    assert a.plan_monitor(w, s, now=T0, when=WHEN).hosts == ("h1", "h2")
    with pytest.raises(UnknownHost, match="nosuch"):
        a.disable_host(["nosuch"])


def test_disabling_the_only_host_of_a_group_disables_its_watch():
    gw = Service("ping", interval=60.0, monitor="ping.monitor", periods=[period()])
    a = Alerter(config(("net", gw)), now=T0)
    a.disable_host(["gw"])
    assert "net" in a.disabled_watches
    a.enable_host(["gw"])
    assert "net" not in a.disabled_watches


def test_exclude_hosts():
    a, w, s = one(period(), exclude_hosts=["h2"])
    assert a.plan_monitor(w, s, now=T0, when=WHEN).hosts == ("h1",)
    assert fail(a, T0)[0].hosts == ("h1", "h2")  # alerts get the group, as mon's -h does


def test_exclude_period_stops_the_monitor():
    pytest.importorskip("hastack.mon.period", reason="hastack.mon.period is not written yet")
    a, w, s = one(period(), exclude_period="hr {11am-1pm}")
    plan = a.plan_monitor(w, s, now=T0, when=WHEN)
    assert not plan.run and "exclude_period" in plan.reason
    assert a.plan_monitor(w, s, now=T0, when=WHEN.replace(hour=14)).run
    b, _, _ = one(period(), exclude_period="")
    b.config.exclude_period = "hr {11am-1pm}"
    assert not b.plan_monitor(w, s, now=T0, when=WHEN).run


def test_monitor_without_hosts_appended():
    a, w, s = one(period(), monitor="check.monitor -x ;;")
    a.disable_host(["h1", "h2"])
    plan = a.plan_monitor(w, s, now=T0, when=WHEN)
    assert plan.run and not plan.append_hosts


def test_stopped_scheduler_sends_no_alerts():
    a, _, _ = one(period())
    a.stopped = True
    assert fail(a, T0) == []


def test_failure_interval_switches_and_restores():
    a, w, s = one(period(), interval=300.0, failure_interval=30.0)
    st = a.state(w, s)
    assert st.interval == 300.0
    fail(a, T0)
    assert st.interval == 30.0
    ok(a, T0 + 30)
    assert st.interval == 300.0


# ---------------------------------------------------------------- dependencies


def test_depend_expression_parser():
    expr = parse_depend("web:ping && (net:gw || !SELF:dns) and not x.y:z-1")
    assert expr.terms == ("web:ping", "net:gw", "SELF:dns", "x.y:z-1")
    values = {"web:ping": True, "net:gw": False, "SELF:dns": False, "x.y:z-1": False}
    assert expr.evaluate(values) is True
    assert expr.evaluate({**values, "SELF:dns": True}) is False
    assert parse_depend("1 || 0").evaluate({}) is True
    for bad in ("web:ping &&", "(a:b", "a:b c:d", "system('rm')", "a:b ; 1"):
        with pytest.raises(DependSyntaxError):
            parse_depend(bad)


def dep_config(child: dict[str, object], parent_periods: list[Period] | None = None) -> Alerter:
    ping = Service("ping", interval=60.0, monitor="ping.monitor", periods=parent_periods or [])
    child.setdefault("interval", 60.0)
    child.setdefault("monitor", "http.monitor")
    http = Service(name="http", periods=[period()], **child)  # type: ignore[arg-type]
    return Alerter(config(("web", ping), ("web", http)), now=T0)


def test_failing_dependency_suppresses_alerts_dep_behavior_a():
    a = dep_config({"depend": "SELF:ping", "dep_behavior": "a"})
    a.monitor_done("web", "ping", 1, "h1 down", now=T0, when=WHEN)
    assert fail(a, T0 + 1) == []
    assert a.state("web", "http").depend_status is False
    assert a.plan_monitor("web", "http", now=T0, when=WHEN).run  # monitoring goes on
    a.monitor_done("web", "ping", 0, "", now=T0 + 2, when=WHEN)
    assert len(fail(a, T0 + 3)) == 1
    assert a.state("web", "http").depend_status is True


def test_alertdepend():
    a = dep_config({"alertdepend": "web:ping"})
    assert len(fail(a, T0)) == 1
    a.monitor_done("web", "ping", 1, "h1 down", now=T0 + 1, when=WHEN)
    assert fail(a, T0 + 2) == []


def test_failing_dependency_suppresses_monitoring_dep_behavior_m():
    a = dep_config({"depend": "web:ping", "dep_behavior": "m"})
    assert a.plan_monitor("web", "http", now=T0, when=WHEN).run
    a.monitor_done("web", "ping", 1, "h1 down", now=T0, when=WHEN)
    plan = a.plan_monitor("web", "http", now=T0 + 1, when=WHEN)
    assert not plan.run and "depend" in plan.reason
    assert len(fail(a, T0 + 2)) == 1  # dep_behavior m does not touch alerts
    b = dep_config({"monitordepend": "web:ping"})
    b.monitor_done("web", "ping", 1, "h1 down", now=T0, when=WHEN)
    assert not b.plan_monitor("web", "http", now=T0 + 1, when=WHEN).run


def test_hostdepend_leaves_out_hosts_named_by_a_failing_parent():
    a = dep_config({"depend": "web:ping", "dep_behavior": "hm"})
    a.monitor_done("web", "ping", 1, "h1", now=T0, when=WHEN)
    assert a.plan_monitor("web", "http", now=T0 + 1, when=WHEN).hosts == ("h2",)
    a.monitor_done("web", "ping", 0, "", now=T0 + 2, when=WHEN)
    assert a.plan_monitor("web", "http", now=T0 + 3, when=WHEN).hosts == ("h1", "h2")


def test_dependencies_are_recursive():
    gw = Service("gw", interval=60.0, monitor="ping.monitor")
    ping = Service("ping", interval=60.0, monitor="ping.monitor", depend="net:gw")
    http = Service(
        "http", interval=60.0, monitor="http.monitor", depend="web:ping", periods=[period()]
    )
    a = Alerter(config(("net", gw), ("web", ping), ("web", http)), now=T0)
    a.monitor_done("net", "gw", 1, "gw down", now=T0, when=WHEN)
    assert fail(a, T0 + 1) == []  # ping itself is OK (untested) but depends on gw


def test_dep_recur_limit_stops_a_cycle():
    one_ = Service("a", interval=60.0, monitor="x", depend="web:b", periods=[period()])
    two = Service("b", interval=60.0, monitor="x", depend="web:a")
    a = Alerter(config(("web", one_), ("web", two), dep_recur_limit=3), now=T0)
    # the evaluation fails, so the status stays unknown and mon suppresses the alert
    assert a.monitor_done("web", "a", 1, "down", now=T0, when=WHEN) == []
    assert a.state("web", "a").depend_status is None


def test_dep_memory_keeps_a_recovered_parent_failing_for_a_while():
    a = dep_config({"depend": "web:ping"})
    a.state("web", "ping")  # created
    a.config.watches["web"].services["ping"].dep_memory = 600.0
    a.monitor_done("web", "ping", 1, "h1", now=T0, when=WHEN)
    a.monitor_done("web", "ping", 0, "", now=T0 + 60, when=WHEN)
    assert fail(a, T0 + 120) == []
    assert len(fail(a, T0 + 601)) == 1


# ---------------------------------------------------------------- traps


def trap_config(**svc: object) -> Alerter:
    s = Service(name="disk", periods=[period(upalerts=[mail("up")])], **svc)  # type: ignore[arg-type]
    return Alerter(config(("traps", s)), now=T0)


def test_trap_sets_status_like_a_monitor():
    a = trap_config()
    (call,) = a.trap_received(
        "traps", "disk", 1, "disk full", "sda1 99%", now=T0, when=WHEN, traphost="10.0.0.5"
    )
    assert call.flags == AlertFlag.TRAP and call.kind == "alert"
    assert call.output == "disk full\n\nsda1 99%"  # mon joins summary and detail this way
    st = a.state("traps", "disk")
    assert st.op_status == Status.FAIL and st.last_trap == T0 and st.last_traphost == "10.0.0.5"
    (up,) = a.trap_received("traps", "disk", 0, "ok", "", now=T0 + 5, when=WHEN)
    assert up.kind == "upalert" and st.op_status == Status.OK and st.last_uptrap == T0 + 5


def test_trap_to_unknown_service_goes_to_default_default():
    d = Service(name="default", periods=[period()])
    a = Alerter(config(("traps", Service("disk")), ("default", d)), now=T0)
    a.config.hostgroups["default"] = ["default"]
    (call,) = a.trap_received("nosuch", "svc", 1, "x", "", now=T0, when=WHEN)
    assert (call.watch, call.service, call.trap_intended) == ("default", "default", "nosuch:svc")
    with pytest.raises(UnknownService):
        Alerter(config(("traps", Service("disk"))), now=T0).trap_received(
            "nosuch", "svc", 1, "x", "", now=T0, when=WHEN
        )


def test_trap_timeout_is_a_failure_and_repeats():
    a = trap_config(traptimeout=300.0)
    assert a.tick(now=T0 + 299, when=WHEN) == []
    assert a.next_deadline() == T0 + 300
    (call,) = a.tick(now=T0 + 300, when=WHEN)
    assert call.flags == AlertFlag.TRAPTIMEOUT and call.retval == 1
    assert call.summary == "trap timeout"
    assert call.output.startswith(
        "trap timeout\ntrap timeout after 300s at Wed Jan 10 12:00:00 2024"
    )
    assert a.state("traps", "disk").op_status == Status.FAIL
    assert a.tick(now=T0 + 400, when=WHEN) == []
    assert len(a.tick(now=T0 + 600, when=WHEN)) == 1
    # a trap restarts the timer, and a success trap brings the service up
    up = a.trap_received("traps", "disk", 0, "ok", "", now=T0 + 650, when=WHEN)
    assert kinds(up) == ["upalert"]
    assert a.tick(now=T0 + 900, when=WHEN) == []
    assert len(a.tick(now=T0 + 950, when=WHEN)) == 1


def test_trapduration_clears_the_failure():
    a = trap_config(trapduration=60.0)
    a.trap_received("traps", "disk", 1, "disk full", "", now=T0, when=WHEN)
    st = a.state("traps", "disk")
    assert a.tick(now=T0 + 59, when=WHEN) == [] and st.op_status == Status.FAIL
    assert a.next_deadline() == T0 + 60
    assert a.tick(now=T0 + 60, when=WHEN) == []  # mon only resets the status, no upalert
    assert st.op_status == Status.OK and a.next_deadline() is None


# ---------------------------------------------------------------- the alert command line


def test_alert_argv_env_failure():
    a, w, s = one(
        period(alerts=[mail("-S", "two words")]),
        description="web check",
        variables={"PAGER": "555"},
    )
    (call,) = fail(a, T0 + 7.6, "h1 down\nmore", code=2)
    argv, env = alert_argv_env(call, "/usr/lib/mon/alert.d/mail.alert", a.service(w, s), a.config)
    assert argv == [
        "/usr/lib/mon/alert.d/mail.alert",
        "-s",
        "http",
        "-g",
        "web",
        "-h",
        "h1 h2",
        "-t",
        str(int(T0 + 7.6)),
        "-S",
        "two words",
    ]
    assert env["MON_ALERTTYPE"] == "failure" and env["MON_RETVAL"] == "2"
    assert env["MON_OPSTATUS"] == "0" and env["MON_GROUP"] == "web" and env["MON_SERVICE"] == "http"
    assert env["MON_DESCRIPTION"] == "web check" and env["PAGER"] == "555"
    # as mon: the summary is this failure's, the output still the previous run's (none yet)
    assert env["MON_LAST_SUMMARY"] == "h1 down" and "MON_LAST_OUTPUT" not in env
    assert env["MON_FIRST_FAILURE"] == str(int(T0 + 7.6))
    assert env["MON_STATEDIR"] == a.config.statedir and env["MON_LOGDIR"] == a.config.logdir
    assert "MON_ACK" not in env and "MON_TRAP_INTENDED" not in env


@pytest.mark.parametrize(
    ("flags", "flag", "alerttype"),
    [
        (AlertFlag.UPALERT, "-u", "up"),
        (AlertFlag.ACKALERT, "-a", "ack"),
        (AlertFlag.DISABLEALERT, "-D", "disable"),
        (AlertFlag.TRAP, "-T", "trap"),
        (AlertFlag.TRAPTIMEOUT, "-O", "traptimeout"),
        (AlertFlag.STARTUPALERT, None, "startup"),
        (AlertFlag.MONITOR, None, "failure"),
    ],
)
def test_alert_argv_flags(flags: AlertFlag, flag: str | None, alerttype: str):
    a, w, s = one(period())
    call = AlertCall(
        watch=w,
        service=s,
        program="x.alert",
        args=("arg",),
        flags=flags,
        kind="alert",
        summary="",
        detail="",
        output="",
        hosts=("h1",),
        retval=0,
        period_label="always",
        time=T0,
    )
    argv, env = alert_argv_env(call, "/a/x.alert", a.service(w, s), a.config)
    assert argv[-1] == "arg" and argv[-2] == (flag or str(int(T0)))
    assert env["MON_ALERTTYPE"] == alerttype


def test_alert_env_is_the_state_at_the_decision():
    a, w, s = one(period(upalerts=[mail("up")]))
    fail(a, T0, "h1 down\nd")
    a.ack(w, s, "on it", now=T0 + 1, when=WHEN, user="joe")
    (up,) = ok(a, T0 + 60, "fine\n")
    _, env = alert_argv_env(up, "/a/mail.alert", a.service(w, s), a.config)
    # the ack and the failure are cleared after the upalert is decided, as in mon
    assert env["MON_ACK"] == "joe: on it" and env["MON_FIRST_FAILURE"] == str(int(T0))
    assert env["MON_OPSTATUS"] == "1" and env["MON_LAST_SUMMARY"] == "h1 down"
    assert a.state(w, s).ack == 0


def test_alert_env_ack_comment():
    a, w, s = one(period(ackalerts=[mail()]))
    fail(a, T0)
    (call,) = a.ack(w, s, "on it", now=T0 + 1, when=WHEN, user="joe")
    _, env = alert_argv_env(call, "/a/mail.alert", a.service(w, s), a.config)
    assert env["MON_ACK"] == "joe: on it" and "MON_RETVAL" not in env


def test_redistribute_on_every_result():
    a, w, s = one(period(), redistribute="trap.alert -h remote")
    calls = fail(a, T0)
    assert [(c.kind, c.program, c.args) for c in calls] == [
        ("redistribute", "trap.alert", ("-h", "remote")),
        ("alert", "mail.alert", ("ops@example.org",)),
    ]
    assert a.state(w, s).alert_count == 1  # redistributions do not count
    assert [c.kind for c in ok(a, T0 + 1)] == ["redistribute"]
    assert [c.kind for c in ok(a, T0 + 2)] == ["redistribute"]


def test_test_alert_does_not_count():
    a, w, s = one(period(label="p", alerts=[mail("x", exit_range=ExitRange(5, 5))]))
    (call,) = a.test_alert(w, s, "alert", retval=1, period_label="p", now=T0)
    assert call.flags == AlertFlag.TEST and call.output == "test\ntest detail\n"
    assert a.state(w, s).alert_count == 0
    assert alert_argv_env(call, "/p", a.service(w, s), a.config)[1]["MON_ALERTTYPE"] == "test"


def test_simulated_day_of_flapping_is_deterministic():
    # a full run on the simulated clock: fails every other hour, alertevery 2h
    a, w, s = one(period(alertevery=AlertEvery(7200.0), upalerts=[mail("up")]), interval=600.0)
    sent: list[str] = []
    t = T0
    for step in range(24 * 6):
        hour = step // 6
        calls = fail(a, t) if hour % 2 else ok(a, t)
        sent += [f"{hour}:{c.kind}" for c in calls]
        t += 600
    # one alert at the start of each failing hour (success resets alertevery), one upalert after
    assert sent.count("1:alert") == 1 and sent.count("2:upalert") == 1
    assert len([x for x in sent if x.endswith(":alert")]) == 12
    assert sent.count("22:upalert") == 1 and a.state(w, s).alert_count == 12 + 11


def test_when_is_independent_of_now():
    # periods are decided by the local datetime handed in, never by the clock
    a, _, _ = one(period())
    assert len(a.monitor_done("web", "http", 1, "x", now=0.0, when=WHEN + timedelta(days=3))) == 1
