"""hastack.mon.config: mon.cf as mon 1.3's read_cf reads it (and against read_cf itself)."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.mon.config import MonConfigError, dhmstos, load, parse
from hastack.mon.model import AlertEvery, AlertSpec, ExitRange, MonConfig, Where

SRC = "test.cf"

# ---- the seed's two configurations ---------------------------------------------------------

SEED_1 = """\
hostgroup servers www ftp pop3 smtp

watch servers
service fping
monitor fping.monitor
interval 1m
period wd {Sun-Sat}
alert mail.alert myemail
alertevery 24h
upalert mail.alert myemail
"""

SEED_2 = """\
watch serverfoo
    service ping
        monitor ping.monitor
        interval 2m
        period label1: wd {Sun-Sat}
             alert mail.alert myemail
             alertevery 12h
             upalert mail.alert myemail
        period label2: wd {Sun-Sat}
             alert mail.alert myspecialemail
             alertevery 24h
             alertafter 5 10m
        period label3: wd {Mon-Fri} hr {9am-6pm}
             alert mail.alert staffemail
             alertevery 4h
    service ftp
        monitor ftp.monitor
        interval 5m
        depend SELF::ping
        period wd {Sun-Sat}
             alert mail.alert myemail
             alertafter 10m
             numalerts 2
"""


def test_seed_first_example() -> None:
    cfg = parse(SEED_1, SRC)
    assert cfg.hostgroups == {"servers": ["www", "ftp", "pop3", "smtp"]}
    service = cfg.watches["servers"].services["fping"]
    assert service.monitor == "fping.monitor"
    assert service.interval == 60
    (period,) = service.periods
    assert (period.label, period.spec) == ("wd {Sun-Sat}", "wd {Sun-Sat}")
    assert period.alerts == [AlertSpec("mail.alert", ("myemail",), None, Where(SRC, 8))]
    assert period.upalerts == [AlertSpec("mail.alert", ("myemail",), None, Where(SRC, 10))]
    assert period.alertevery == AlertEvery(86400)
    assert cfg.warnings == []


def test_seed_second_example() -> None:
    cfg = parse(SEED_2, SRC)
    # no hostgroup: mon watches a group of that one host, with a warning
    assert cfg.hostgroups == {"serverfoo": ["serverfoo"]}
    assert cfg.warnings == [
        f"{SRC}:1: watch 'serverfoo' has no hostgroup defined before it: watching the host "
        "'serverfoo' (as mon does)"
    ]
    ping = cfg.watches["serverfoo"].services["ping"]
    assert ping.interval == 120
    assert [p.label for p in ping.periods] == ["label1", "label2", "label3"]
    label1, label2, label3 = ping.periods
    assert label1.spec == "wd {Sun-Sat}"
    assert label1.alerts[0].args == ("myemail",) and label1.upalerts[0].args == ("myemail",)
    assert label1.alertevery == AlertEvery(12 * 3600)
    assert label2.alerts[0].args == ("myspecialemail",)
    assert (label2.alertafter, label2.alertafter_interval) == (5, 600)
    assert label2.alertevery == AlertEvery(86400)
    assert label3.spec == "wd {Mon-Fri} hr {9am-6pm}"
    assert label3.alerts[0].args == ("staffemail",) and label3.alertevery == AlertEvery(4 * 3600)
    ftp = cfg.watches["serverfoo"].services["ftp"]
    assert (ftp.monitor, ftp.interval, ftp.depend) == ("ftp.monitor", 300, "SELF::ping")
    (period,) = ftp.periods
    assert period.alertafter_interval == 600 and period.alertafter is None
    assert period.alertafter_consec is None and period.numalerts == 2


# ---- globals -------------------------------------------------------------------------------

GLOBALS = [
    # key, text, field, value (after mon's path resolution)
    ("alertdir", "/a/alert.d:alerts/", "alertdir", "/a/alert.d:/usr/lib/mon/alerts"),
    ("mondir", "mon.d:/opt/mon.d", "mondir", "/usr/lib/mon/mon.d:/opt/mon.d"),
    ("basedir", "/srv/mon", "basedir", "/srv/mon"),
    ("cfbasedir", "/srv/etc", "cfbasedir", "/srv/etc"),
    ("logdir", "logs", "logdir", "/usr/lib/mon/logs"),
    ("statedir", "/var/lib/mon", "statedir", "/var/lib/mon"),
    ("histlength", "500", "histlength", 500),
    ("serverport", "3583", "serverport", 3583),
    ("trapport", "3584", "trapport", 3584),
    ("serverbind", "127.0.0.1", "serverbind", "127.0.0.1"),
    ("trapbind", "10.0.0.1", "trapbind", "10.0.0.1"),
    ("clientallow", r"127\.0\.0\.\d+", "clientallow", r"127\.0\.0\.\d+"),
    ("pidfile", "/run/mon.pid", "pidfile", "/run/mon.pid"),
    ("randstart", "2m", "randstart", 120.0),
    ("maxprocs", "20", "maxprocs", 20),
    ("authfile", "my-auth.cf", "authfile", "/etc/mon/my-auth.cf"),
    ("authtype", "userfile getpwnam", "authtype", ["userfile", "getpwnam"]),
    ("pamservice", "mon", "pamservice", "mon"),
    ("userfile", "/etc/users.cf", "userfile", "/etc/users.cf"),
    ("historicfile", "history.log", "historicfile", "/var/log/mon/history.log"),
    ("historictime", "1d", "historictime", 86400.0),
    ("cltimeout", "45s", "cltimeout", 45.0),
    ("monerrfile", "/var/log/mon.err", "monerrfile", "/var/log/mon.err"),
    ("dtlogfile", "/tmp/dt.log", "dtlogfile", "/tmp/dt.log"),
    ("dtlogging", "yes", "dtlogging", True),
    ("dep_recur_limit", "3", "dep_recur_limit", 3),
    ("dep_behavior", "m", "dep_behavior", "m"),
    ("dep_memory", "5m", "dep_memory", 300.0),
    ("unack_summary", "yes", "unack_summary", True),
    ("syslog_facility", "local0", "syslog_facility", "local0"),
    ("startupalerts_on_reset", "yes", "startupalerts_on_reset", True),
    ("monremote", "/usr/bin/monremote", "monremote", "/usr/bin/monremote"),
    ("exclude_period", "hr {1am-3am}", "exclude_period", "hr {1am-3am}"),
]


@pytest.mark.parametrize(("key", "text", "attr", "value"), GLOBALS)
def test_each_global(key: str, text: str, attr: str, value: object) -> None:
    cfg = parse(f"# globals\n{key} = {text}\n", SRC)
    assert getattr(cfg, attr) == value
    assert cfg.globals_text == {key: text}


def test_every_global_key_is_covered() -> None:
    from hastack.mon.config import GLOBALS as KEYS

    assert {g[0] for g in GLOBALS} == KEYS


def test_global_defaults_are_mon_defaults_resolved() -> None:
    cfg = parse("", SRC)
    assert (cfg.histlength, cfg.serverport, cfg.trapport, cfg.maxprocs) == (100, 2583, 2583, 0)
    assert (cfg.cltimeout, cfg.randstart, cfg.historictime) == (30.0, 0.0, 0.0)
    assert cfg.mondir == "/usr/local/lib/mon/mon.d:/usr/lib/mon/mon.d"
    assert cfg.alertdir == "/usr/local/lib/mon/alert.d:/usr/lib/mon/alert.d"
    assert (cfg.authfile, cfg.userfile) == ("/etc/mon/auth.cf", "/etc/mon/monusers.cf")
    assert cfg.dtlogfile == "/var/log/mon/downtime.log"
    assert (cfg.historicfile, cfg.dtlogging, cfg.authtype) == ("", False, ["getpwnam"])
    assert (cfg.dep_behavior, cfg.dep_memory, cfg.unack_summary) == ("a", None, False)
    assert (cfg.clientallow, cfg.syslog_facility) == (r"\d+.\d+.\d+.\d+", "daemon")
    assert (cfg.exclude_period, cfg.monremote, cfg.startupalerts_on_reset) == ("", None, False)
    assert cfg.globals_text == {} and cfg.watches == {} and cfg.warnings == []


def test_paths_follow_basedir_cfbasedir_and_logdir() -> None:
    cfg = parse(
        "basedir = /srv/mon\ncfbasedir = /srv/etc\nlogdir = log.d\nstatedir = state.d\n"
        "dtlogfile = dt.log\nhistoricfile = hist\nmondir = m1:/abs/m2/\n",
        SRC,
    )
    assert (cfg.logdir, cfg.statedir) == ("/srv/mon/log.d", "/srv/mon/state.d")
    assert (cfg.dtlogfile, cfg.historicfile) == ("/srv/mon/log.d/dt.log", "/srv/mon/log.d/hist")
    assert cfg.authfile == "/srv/etc/auth.cf"
    assert cfg.mondir == "/srv/mon/m1:/abs/m2"
    assert cfg.globals_text["mondir"] == "m1:/abs/m2/"


def test_global_quirks_as_mon() -> None:
    # dtlogging: numerically 1, or exactly yes/true; startupalerts_on_reset: mon's loose pattern
    assert parse("dtlogging = 1.0\n", SRC).dtlogging is True
    assert parse("dtlogging = on\n", SRC).dtlogging is False
    assert parse("startupalerts_on_reset = on\n", SRC).startupalerts_on_reset is True
    assert parse("startupalerts_on_reset = 0\n", SRC).startupalerts_on_reset is False
    assert parse("unack_summary = 0\n", SRC).unack_summary is False


def test_globals_given_before_a_service_set_its_dependency_defaults() -> None:
    cfg = parse(
        "watch a\nservice one\ninterval 1m\n\n"
        "dep_behavior = hm\ndep_memory = 2m\nunack_summary = 1\n\n"
        "watch b\nservice two\ninterval 1m\n",
        SRC,
    )
    one, two = cfg.watches["a"].services["one"], cfg.watches["b"].services["two"]
    assert (one.dep_behavior, one.dep_memory, one.unack_summary) == ("a", None, False)
    assert (two.dep_behavior, two.dep_memory, two.unack_summary) == ("hm", 120.0, True)


# ---- services and periods ------------------------------------------------------------------

SERVICE = """\
hostgroup web w1 w2 w3

watch web
    service http
        FOO=bar baz
        MON_X=1
        interval 5m
        failure_interval 30s
        traptimeout 1h
        trapduration 10m
        randskew 15s
        monitor http.monitor -p 8080
        redistribute mail.alert ops
        allow_empty_group
        description the web servers
        unack_summary yes
        dep_behavior m
        dep_memory 2m
        depend SELF:ping
        alertdepend SELF:ping web:dns
        monitordepend SELF:ping
        hostdepend SELF:ping
        exclude_hosts w2 w3
        exclude_period hr {3am}
        period biz: wd {Mon-Fri} hr {9am-5pm}
            alert exit=2 page.alert -x ops
            alert exit=3-9 mail.alert ops@example.com
            alert mail.alert all@example.com
            upalert mail.alert ops
            startupalert mail.alert boot
            ackalert mail.alert ack
            disablealert mail.alert off
            alertevery 1h observe_detail
            alertafter 3
            upalertafter 10m
            numalerts 5
            no_comp_alerts
            alerts_dont_count
            alertexitrange 1-4
        period wd {Sat Sun}
            alertevery 2h strict
            alertafter 2 20m
        period night: hr {0-6}
            alertevery 30m ignore_summary
            alertafter 15m
"""


def test_every_service_key() -> None:
    cfg = parse(SERVICE, SRC)
    s = cfg.watches["web"].services["http"]
    assert s.variables == {"FOO": "bar baz", "MON_X": "1"}
    assert (s.interval, s.failure_interval, s.traptimeout, s.trapduration, s.randskew) == (
        300.0,
        30.0,
        3600.0,
        600.0,
        15.0,
    )
    assert (s.monitor, s.redistribute) == ("http.monitor -p 8080", "mail.alert ops")
    assert (s.allow_empty_group, s.description, s.unack_summary) == (
        True,
        "the web servers",
        True,
    )
    assert (s.dep_behavior, s.dep_memory) == ("m", 120.0)
    assert (s.depend, s.alertdepend) == ("SELF:ping", "SELF:ping web:dns")
    assert (s.monitordepend, s.hostdepend) == ("SELF:ping", "SELF:ping")
    assert (s.exclude_hosts, s.exclude_period) == (["w2", "w3"], "hr {3am}")
    assert s.where == Where(SRC, 4)


def test_service_defaults() -> None:
    s = parse("watch h\nservice x\n", SRC).watches["h"].services["x"]
    assert (s.interval, s.failure_interval, s.monitor, s.description) == (None, None, None, "")
    assert (s.allow_empty_group, s.traptimeout, s.trapduration, s.randskew) == (
        False,
        None,
        None,
        0.0,
    )
    assert (s.redistribute, s.unack_summary, s.dep_behavior, s.dep_memory) == ("", False, "a", None)
    assert (s.depend, s.alertdepend, s.monitordepend, s.hostdepend) == ("", "", "", "")
    assert (s.exclude_hosts, s.exclude_period, s.variables, s.periods) == ([], "", {}, [])


def test_every_period_key() -> None:
    biz, weekend, night = parse(SERVICE, SRC).watches["web"].services["http"].periods
    assert (biz.label, biz.spec) == ("biz", "wd {Mon-Fri} hr {9am-5pm}")
    assert biz.alerts == [
        AlertSpec("page.alert", ("-x", "ops"), ExitRange(2, 2), Where(SRC, 26)),
        AlertSpec("mail.alert", ("ops@example.com",), ExitRange(3, 9), Where(SRC, 27)),
        AlertSpec("mail.alert", ("all@example.com",), None, Where(SRC, 28)),
    ]
    assert [a.args for a in biz.upalerts] == [("ops",)]
    assert [a.args for a in biz.startupalerts] == [("boot",)]
    assert [a.args for a in biz.ackalerts] == [("ack",)]
    assert [a.args for a in biz.disablealerts] == [("off",)]
    assert biz.alertevery == AlertEvery(3600, observe_detail=True)
    assert (biz.alertafter_consec, biz.alertafter, biz.alertafter_interval) == (3, None, None)
    assert (biz.upalertafter, biz.numalerts) == (600.0, 5)
    assert (biz.no_comp_alerts, biz.alerts_dont_count) == (True, True)
    assert biz.alertexitrange == ExitRange(1, 4) and 4 in biz.alertexitrange
    assert weekend.label == weekend.spec == "wd {Sat Sun}"
    assert weekend.alertevery == AlertEvery(7200, strict=True)
    assert (weekend.alertafter, weekend.alertafter_interval) == (2, 1200.0)
    assert night.alertevery == AlertEvery(1800, ignore_summary=True)
    assert (night.alertafter, night.alertafter_interval) == (None, 900.0)


def test_period_defaults() -> None:
    (p,) = parse("watch h\nservice x\nperiod\n", SRC).watches["h"].services["x"].periods
    assert (p.label, p.spec, p.alerts, p.alertevery, p.numalerts) == ("", "", [], None, None)
    assert (p.alertafter_consec, p.alertafter, p.alertafter_interval, p.upalertafter) == (
        None,
        None,
        None,
        None,
    )
    assert (p.no_comp_alerts, p.alerts_dont_count, p.alertexitrange) == (False, False, None)


def test_alertevery_old_summary_form_is_accepted() -> None:
    text = "watch h\nservice x\nperiod\nalertevery 1h summary\n"
    (p,) = parse(text, SRC).watches["h"].services["x"].periods
    assert p.alertevery == AlertEvery(3600)


# ---- reading lines -------------------------------------------------------------------------


def test_continuation_lines_and_comments_inside_them() -> None:
    text = (
        "hostgroup web \\\n"
        "    w1 w2 \\\n"
        "# a comment inside is skipped\n"
        "    w3\n"
        "\n"
        "watch web\n"
        "service http\n"
        "monitor http.monitor \\\n"
        "   -p 80\n"
        "interval 1m\n"
    )
    cfg = parse(text, SRC)
    assert cfg.hostgroups["web"] == ["w1", "w2", "w3"]
    service = cfg.watches["web"].services["http"]
    assert service.monitor == "http.monitor -p 80"
    assert service.where == Where(SRC, 7)


def test_hostgroup_record_continues_on_following_lines() -> None:
    cfg = parse("hostgroup g a b\n  c d\ne\n\nhostgroup h\nx\n", SRC)
    assert cfg.hostgroups == {"g": ["a", "b", "c", "d", "e"], "h": ["x"]}


def test_views_and_aliases() -> None:
    cfg = parse("view ops web dns\n mail web\n\nalias Web Servers\nweb:http\nweb:ping\n", SRC)
    assert cfg.views == {"ops": ["web", "dns", "mail"]}
    # 'alias Web Servers' is not an alias line (one name only), so mon ignores it and its lines
    assert cfg.aliases == {}
    assert len(cfg.warnings) == 3
    cfg = parse("alias WebServers\nweb http\nweb ping\n", SRC)
    assert cfg.aliases == {"WebServers": ["web http", "web ping"]}


def test_stray_line_outside_records_is_a_warning() -> None:
    cfg = parse("something odd\n", SRC)
    assert cfg.warnings == [
        f"{SRC}:1: ignored 'something odd': not in a hostgroup, view, alias or watch record"
        " (mon ignores it)"
    ]


def test_hostgroup_without_watch_warns() -> None:
    cfg = parse("hostgroup lonely a\n", SRC)
    assert cfg.warnings == [f"{SRC}: hostgroup 'lonely' has no watch with a service"]


# ---- errors --------------------------------------------------------------------------------

ERRORS = [
    ("bogus = 1\n", 1, "unknown global 'bogus'"),
    ("\n\nhistlength = many\n", 3, "histlength: 'many' is not a whole number"),
    ("randstart = 30\n", 1, "30s, 5m, 1h, 2d"),
    ("cltimeout = 30\n", 1, "30s, 5m, 1h, 2d"),
    ("historictime = 1w\n", 1, "30s, 5m, 1h, 2d"),
    ("dep_memory = 10\n", 1, "30s, 5m, 1h, 2d"),
    ("dep_behavior = x\n", 1, "allowed: a (alerts), m (monitors), hm"),
    ("unack_summary = 2\n", 1, "allowed: 0, 1, y, yes, n, no"),
    ("exclude_period = wd {Funday}\n", 1, "exclude_period: malformed time period"),
    ("watch h\nFOO=1\n", 2, "environment variable FOO set outside a service"),
    ("watch h\ninterval 1m\n", 2, "'interval' before any 'service NAME'"),
    ("watch h\nservice a b\n", 2, "invalid service name 'a b'"),
    ("watch h\nservice a\nservice a\n", 3, "service 'a' already defined for watch 'h'"),
    ("watch h\nservice a\n\nwatch h\nservice b\n", 4, "watch 'h' already defined"),
    ("watch h\nservice a\nperiod p: wd {x}\n", 3, "period: malformed time period"),
    ("watch h\nservice a\nperiod\nperiod\n", 4, "period '' already defined"),
    ("watch h\nservice a\ninterval 5\n", 3, "interval: bad time '5'"),
    ("watch h\nservice a\ninterval 0s\n", 3, "must be more than zero"),
    ("watch h\nservice a\nfailure_interval 1\n", 3, "30s, 5m, 1h, 2d"),
    ("watch h\nservice a\ntraptimeout 1\n", 3, "30s, 5m, 1h, 2d"),
    ("watch h\nservice a\ntrapduration 1\n", 3, "30s, 5m, 1h, 2d"),
    ("watch h\nservice a\nrandskew 1\n", 3, "30s, 5m, 1h, 2d"),
    ("watch h\nservice a\ndep_memory 1\n", 3, "30s, 5m, 1h, 2d"),
    ("watch h\nservice a\ndep_behavior x\n", 3, "unknown dependency behavior 'x'"),
    ("watch h\nservice a\nunack_summary\n", 3, "allowed: 0, 1, y, yes, n, no"),
    ("watch h\nservice a\nfrobnicate 1\n", 3, "unknown service key 'frobnicate'"),
    ("watch h\nservice a\nexclude_period hr {99}\n", 3, "exclude_period: malformed"),
    ("watch h\nservice a\nperiod\ninterval 1m\n", 4, "must come before the service's first"),
    ("watch h\nservice a\nperiod\nfrob\n", 4, "unknown period key 'frob'"),
    ("watch h\nservice a\nperiod\nalert\n", 4, "alert: needs an alert program"),
    ("watch h\nservice a\nperiod\nalert exit=x m.alert\n", 4, "allowed: exit=N or exit=N-M"),
    ("watch h\nservice a\nperiod\nupalert exit=1\n", 4, "upalert: needs an alert program"),
    ("watch h\nservice a\nperiod\nalertevery 1\n", 4, "alertevery: bad time '1'"),
    ("watch h\nservice a\nperiod\nalertafter 1d\n", 4, "alertafter: invalid value '1d'"),
    ("watch h\nservice a\nperiod\nalertafter 0m\n", 4, "must be more than zero"),
    ("watch h\nservice a\nperiod\nupalertafter 5\n", 4, "30s, 5m, 1h, 2d"),
    ("watch h\nservice a\nperiod\nnumalerts x\n", 4, "numalerts: 'x' is not a whole number"),
    ("watch h\nservice a\nperiod\nalertexitrange 1-\n", 4, "allowed: N, N-M"),
    (
        "watch h\nservice a\ninterval 5m\nperiod\nalertafter 3 10m\n",
        5,
        "alertafter 3 10m: not sensible with interval 300s",
    ),
    ("watch h\n+odd\n", 2, "cannot read '+odd'"),
]


@pytest.mark.parametrize(("text", "line", "words"), ERRORS)
def test_each_error_names_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(MonConfigError) as info:
        parse(text, SRC)
    (problem,) = info.value.problems
    assert problem.startswith(f"{SRC}:{line}: ")
    assert words in problem


def test_alertafter_sensible_boundary() -> None:
    # (N-1) * interval must stay below T: 2 * 5m < 11m is fine
    text = "watch h\nservice a\ninterval 5m\nperiod\nalertafter 3 11m\n"
    (p,) = parse(text, SRC).watches["h"].services["a"].periods
    assert (p.alertafter, p.alertafter_interval) == (3, 660.0)


def test_every_problem_is_collected() -> None:
    text = "bogus = 1\nwatch h\nservice a\ninterval 5\nperiod x: wd {Noday}\nalertevery 1\n"
    with pytest.raises(MonConfigError) as info:
        parse(text, SRC)
    assert [p.split(": ", 1)[0] for p in info.value.problems] == [
        f"{SRC}:1",
        f"{SRC}:4",
        f"{SRC}:5",
        f"{SRC}:6",
    ]
    assert str(info.value) == "\n".join(info.value.problems)


def test_dhmstos() -> None:
    assert [dhmstos(x) for x in ("30s", "5m", "1.5h", "2D", " 1d ")] == [
        30,
        300,
        5400,
        172800,
        86400,
    ]
    assert [dhmstos(x) for x in ("30", "5 m", "1w", "", "-1s")] == [None] * 5


# ---- load ----------------------------------------------------------------------------------


def test_load_reads_a_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "mon.cf"
    path.write_text(SEED_1)
    cfg = load(path)
    assert cfg.source == str(path)
    assert cfg.watches["servers"].services["fping"].where == Where(str(path), 4)
    path.write_text("bogus = 1\n")
    with pytest.raises(MonConfigError) as info:
        load(path)
    assert info.value.problems[0].startswith(f"{path}:1: unknown global")


def test_load_refuses_m4_and_missing_files(tmp_path: Path) -> None:
    m4 = tmp_path / "mon.cf.m4"
    m4.write_text(SEED_1)
    with pytest.raises(MonConfigError, match=r"m4 preprocessing of mon\.cf is not supported"):
        load(m4)
    with pytest.raises(MonConfigError, match="cannot read"):
        load(tmp_path / "missing.cf")


def _debian_examples() -> list[Path]:
    found = []
    for base in (
        Path("/tmp/mon/x/usr/share/doc/mon/examples"),
        Path("/usr/share/doc/mon/examples"),
    ):
        found += [base / "very-simple.cf", base / "example.cf.gz"]
    found += [Path("/etc/mon/mon.cf"), Path("/tmp/mon/x/etc/mon/mon.cf")]
    return [p for p in found if p.exists()]


def _read(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def test_debian_examples_parse() -> None:
    paths = _debian_examples()
    if not paths:
        print("SKIP: Debian's mon examples are not installed (package mon)")
        pytest.skip("Debian's mon examples are not installed (package mon)")
    for path in paths:
        cfg = parse(_read(path), str(path))
        assert cfg.watches, path
        assert all(w.services for w in cfg.watches.values()), path


# ---- against mon's own read_cf -------------------------------------------------------------

# mon has no "check the configuration" option (every run goes on to bind its ports), so the
# test runs mon's own read_cf and dhmstos, taken from /usr/sbin/mon at run time, on each file.
_ORACLE = r"""
use Time::Period; use File::Spec; use JSON::PP;
my $src = do { local $/; open my $fh, '<', $ENV{MON_PROGRAM} or die "$!"; <$fh> };
my ($rc) = $src =~ /^(sub read_cf \{.*?^\})/ms or die "no read_cf";
my ($dh) = $src =~ /^(sub dhmstos \{.*?^\})/ms or die "no dhmstos";
eval "$rc\n$dh\n1" or die $@;
for my $f (@ARGV) {
  %groups = (); %watch = (); %views = (); %alias = (); %CF = ();
  my $err = read_cf($f, 1);
  my %w;
  for my $g (keys %watch) { for my $s (keys %{$watch{$g}}) {
    my $r = $watch{$g}{$s};
    $w{$g}{$s} = {interval => $r->{interval}, periods => {map { my $p = $r->{periods}{$_};
      ($_ => {alerts => $p->{alerts}, alertevery => $p->{alertevery},
              alertafter => $p->{alertafter}, alertafterival => $p->{alertafterival},
              alertafter_consec => $p->{alertafter_consec}}) } keys %{$r->{periods} || {}}}};
  }}
  print encode_json({err => $err, groups => \%groups, watch => \%w}), "\n";
}
"""


def _mon_read_cf(paths: list[Path]) -> list[dict[str, object]]:
    program = next(
        (p for p in ("/usr/sbin/mon", "/tmp/mon/x/usr/sbin/mon") if Path(p).exists()), None
    )
    reason = None
    if program is None:
        reason = "mon is not installed (/usr/sbin/mon)"
    elif shutil.which("perl") is None:
        reason = "perl is not installed"
    elif subprocess.run(["perl", "-MTime::Period", "-e", "1"], capture_output=True).returncode:
        reason = "the Perl module Time::Period is not installed"
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    out = subprocess.run(
        ["perl", "-e", _ORACLE, *map(str, paths)],
        capture_output=True,
        env={"MON_PROGRAM": str(program), "PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


ORACLE_CASES = [
    SEED_1,
    SEED_2,
    SERVICE,
    "hostgroup g a \\\n  b\nc\n\nwatch g\nservice s\ninterval 90s\nperiod\nalert x.alert\n",
    "watch h\nservice a\ninterval 5m\nperiod\nalertafter 3 10m\n",
    "watch h\nservice a\ninterval 5m\nperiod\nalertafter 3 11m\n",
    "watch h\nservice a\nperiod\nalertafter 1d\n",
    "watch h\nservice a\ninterval 5\n",
    "watch h\nservice a\nservice a\n",
    "watch h\nservice a\n\nwatch h\nservice b\n",
    "watch h\n\nwatch h\nservice b\ninterval 1m\n",
    "bogus = 1\n",
    "cltimeout = 30\n",
    "cltimeout = 30s\n",
    "watch h\nservice a\nperiod\ninterval 1m\n",
    "watch h\nservice a\nperiod wd {Mon} hr {25}\n",
    "watch h\nservice a\nperiod x: wd {Mon-Fri}\nperiod x: hr {1}\n",
    "watch h\nservice a\nexclude_period hr {99}\n",
    "watch h\nservice a\nperiod\nnumalerts 3x\n",
    "watch h\nservice a\nperiod\nalertexitrange 2-5\nalertevery 10m strict\n",
    "watch h\nservice a\nperiod\nalertevery 0m\n",
    "watch h\nFOO=1\n",
    "hostgroup g a\n\nfoo bar\nwatch g\nservice s\ninterval 1m\n",
]


def _num(value: object) -> float | None:
    # mon keeps "90" from "90s" as text and computes the other units
    return None if value is None else float(str(value))


def test_same_verdict_and_line_as_mons_read_cf(tmp_path: Path) -> None:
    paths = []
    for i, text in enumerate(ORACLE_CASES):
        path = tmp_path / f"case{i}.cf"
        path.write_text(text)
        paths.append(path)
    for path, mon in zip(paths, _mon_read_cf(paths), strict=True):
        err = str(mon["err"])
        try:
            cfg = load(path)
        except MonConfigError as exc:
            assert err, f"{path.name}: mon accepts it, hastack says {exc}"
            mon_line = err.rsplit("line ", 1)[-1]
            assert exc.problems[0].startswith(f"{path}:{mon_line}: "), (err, exc.problems)
            continue
        assert err == "", f"{path.name}: hastack accepts it, mon says {err}"
        assert cfg.hostgroups == mon["groups"]
        watches = mon["watch"]
        assert isinstance(watches, dict)
        assert {g: set(w.services) for g, w in cfg.watches.items() if w.services} == {
            g: set(s) for g, s in watches.items()
        }
        for group, services in watches.items():
            for name, expected in services.items():
                ours = cfg.watches[group].services[name]
                assert ours.interval == _num(expected["interval"])
                periods = {p.label: p for p in ours.periods}
                assert set(periods) == set(expected["periods"])
                for label, mp in expected["periods"].items():
                    p = periods[label]
                    words = [" ".join(filter(None, (a.program, *a.args))) for a in p.alerts]
                    assert [a for a in words] == [
                        a.split(None, 1)[1] if a.startswith("exit=") else a for a in mp["alerts"]
                    ]
                    assert (p.alertevery.seconds if p.alertevery else 0) == _num(mp["alertevery"])
                    assert p.alertafter == _num(mp["alertafter"])
                    assert p.alertafter_interval == _num(mp["alertafterival"])
                    assert p.alertafter_consec == (
                        int(mp["alertafter_consec"]) if mp["alertafter_consec"] else None
                    )


# ---- fuzzing -------------------------------------------------------------------------------


def _outcome(text: str) -> MonConfig | MonConfigError:
    try:
        return parse(text, SRC)
    except MonConfigError as exc:
        assert exc.problems and all(p.startswith(f"{SRC}:") for p in exc.problems)
        return exc


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_random_text_parses_or_raises(text: str) -> None:
    _outcome(text)


_PIECES = [
    "\n", "\n\n", " ", "\\\n", "#", "=", "{", "}", ":", "-", "5m", "0", "x", "exit=", "period ",
    "service ", "watch ", "hostgroup ", "alert ", "alertafter ", "interval ", "FOO=",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_fuzz_mutations_of_a_valid_file(seed: int) -> None:
    rng = random.Random(seed)
    text = SERVICE + "\n" + SEED_2
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(text))
        action = rng.randrange(3)
        if action == 0:
            text = text[:pos] + text[pos + rng.randint(1, 20) :]
        elif action == 1:
            text = text[:pos] + rng.choice(_PIECES) + text[pos:]
        else:
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    _outcome(text)
