"""drbd.conf fuzzing: any text, any token soup and any mutation of a valid file gives a DrbdConf
or a ConfigError, never another exception; and for generated models, dump -> parse gives the
model back."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hastack.config.errors import ConfigError
from hastack.replica.config import parse_drbd_conf
from hastack.replica.dump import dump
from hastack.replica.model import (
    Address,
    DrbdConf,
    Global,
    Host,
    MetaDisk,
    Option,
    Resource,
    Settings,
    Volume,
)
from hastack.replica.options import GLOBAL, TABLES, Spec
from tests.unit.test_replica_config import MAN_STYLE, SEED_STYLE, MemFiles

VALID = SEED_STYLE + MAN_STYLE.replace("r0", "r1").replace("minor 1", "minor 2").replace(
    ":7789", ":7790"
)
WORDS = [
    *VALID.split(),
    *[
        "{",
        "}",
        ";",
        ":",
        "[",
        "]",
        "#",
        '"',
        "\\",
        "skip",
        "include",
        "volume",
        "floating",
        "stacked-on-top-of",
        "ipv6",
        "[fd00::1]",
    ],
    "connection-mesh",
    "nbd-address",
    "minor",
    "none",
    "on-congestion",
    "pull-ahead",
    '"unterminated',
    "$",
    "10G",
    "7s",
]


def _parses_or_config_error(text: str) -> None:
    try:
        conf = parse_drbd_conf(text, "drbd.conf", MemFiles({"x.conf": VALID}))
    except ConfigError as exc:
        assert exc.problems
        assert all(str(p) for p in exc.problems)
        return
    assert isinstance(conf, DrbdConf)
    for resource in conf.resources:
        assert len(resource.hosts) == 2
    # Whatever was read can be written and read back to the same model.
    assert parse_drbd_conf(dump(conf), "dump", MemFiles({})) == conf


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _parses_or_config_error(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=80))
def test_token_soup(words: list[str]) -> None:
    _parses_or_config_error(" ".join(words))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "duplicate"]),
            st.integers(0, len(VALID)),
            st.integers(0, 40),
            st.sampled_from(WORDS),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_valid_file(edits: list[tuple[str, int, int, str]]) -> None:
    text = VALID
    for kind, at, length, word in edits:
        at = min(at, len(text))
        if kind == "delete":
            text = text[:at] + text[at + length :]
        elif kind == "insert":
            text = text[:at] + " " + word + " " + text[at:]
        else:
            text = text[:at] + text[at : at + length] + text[at:]
    _parses_or_config_error(text)


# --------------------------------------------------------------------------------------------
# Generated models: dump -> parse is the identity


def _value(spec: Spec) -> st.SearchStrategy[Any]:
    if spec.kind == "int":  # within hastack's own ceiling where it has one (al-extents)
        return st.integers(spec.low, spec.high if spec.cap is None else spec.cap)
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "flag":
        return st.just(True)
    if spec.kind in ("choice", "digest"):
        return st.sampled_from(spec.choices)
    if spec.kind == "cpumask":
        return st.from_regex(r"[0-9a-f]{1,8}(,[0-9a-f]{1,8}){0,2}", fullmatch=True)
    size = 64 if spec.name == "shared-secret" else 100
    return st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=size
    )


# Options a generated model leaves out: they name other resources or hosts (made per resource
# below), or are checked against each other (fixed up below).
_SPECIAL = {"resync-after", "become-primary-on"}


@st.composite
def _given(draw: st.DrawFn, sections: tuple[str, ...] = tuple(TABLES)) -> dict[str, dict]:
    out: dict[str, dict[str, Any]] = {}
    for section in sections:
        specs = [s for s in TABLES[section].values() if s.name not in _SPECIAL]
        chosen = draw(st.lists(st.sampled_from(specs), unique_by=lambda s: s.name, max_size=6))
        out[section] = {spec.name: draw(_value(spec)) for spec in chosen}
    return out


def _consistent(given: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the checks require of a resource: allow-two-primaries with protocol C,
    on-congestion other than block with protocol A."""
    net = dict(given.get("net", {}))
    if net.get("on-congestion", "block") != "block":
        net["protocol"] = "A"
        net["allow-two-primaries"] = False
    elif net.get("allow-two-primaries"):
        net["protocol"] = "C"
    return {**given, "net": net}


def _merge(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {s: {} for s in TABLES}
    for layer in layers:
        for section, options in layer.items():
            merged[section].update(options)
    return merged


def _section(section: str, given: dict[str, Any]) -> Any:
    cls = type(getattr(Settings(), section))
    typed = {s.field: given[n] for n, s in TABLES[section].items() if s.field and n in given}
    other = tuple(
        Option(n, given[n]) for n, s in TABLES[section].items() if not s.field and n in given
    )
    return cls(**typed, other=other)


def _settings(given: dict[str, dict[str, Any]]) -> Settings:
    return Settings(**{s: _section(s, given.get(s, {})) for s in TABLES})


# Paths made unique by the minor: drbdadm refuses a disk or meta-data slot used twice on a node.
_PATHS = [
    "/dev/vg/data{}",
    "/dev/disk/by-id/wwn-0x5000:part{}",
    "/srv/disk image {}.img",
    '/x/"q"\\{}',
]
_NODES = ["alice", "bob", "carol", "dave", "eve smith", "f.g-h_1"]


@st.composite
def _resource(draw: st.DrawFn, index: int, name: str, common: dict) -> Resource:
    own = draw(_given())
    explicit = draw(st.booleans())
    pair = draw(st.lists(st.sampled_from(_NODES), min_size=2, max_size=3, unique=True))
    names = [(pair[0],), tuple(pair[1:])]
    floating = [draw(st.booleans()) and not explicit for _ in range(2)]
    hostnames = [n for h in range(2) if not floating[h] for n in names[h]]
    if hostnames and draw(st.booleans()):
        own.setdefault("net", {})["after-sb-0pri"] = "discard-node-" + draw(
            st.sampled_from(hostnames)
        )
    if hostnames and draw(st.booleans()):
        own.setdefault("startup", {})["become-primary-on"] = draw(
            st.sampled_from([("both",), tuple(hostnames[:1]), tuple(hostnames)])
        )
    given = _consistent(_merge(common, own))
    settings = _settings(given)
    numbers = (
        sorted(draw(st.sets(st.integers(0, 65535), min_size=1, max_size=3))) if explicit else [0]
    )
    hosts = []
    for h in range(2):
        family = draw(st.sampled_from(["ipv4", "ipv6", "ssocks", "sdp"]))
        ip = f"fd00::{index}:{h + 1}" if family == "ipv6" else f"10.{index}.0.{h + 1}"
        volumes = []
        for position, number in enumerate(numbers):
            minor = index * 4 + position
            disk_options = None
            if explicit and draw(st.booleans()):
                extra = draw(_given(("disk",)))
                candidate = _section("disk", _merge(given, extra)["disk"])
                disk_options = None if candidate == settings.disk else candidate
            nbd = None
            if not floating[h] and draw(st.booleans()):
                nbd_family = draw(st.sampled_from(["ipv4", "ipv6"]))
                nbd_ip = "127.0.0.1" if nbd_family == "ipv4" else "::1"
                nbd = Address(nbd_family, nbd_ip, 30000 + minor * 2 + h)  # type: ignore[arg-type]
            volumes.append(
                Volume(
                    number=number,
                    device=draw(st.sampled_from([f"/dev/drbd{minor}", f"/dev/drbd_v{minor}"])),
                    minor=minor,
                    disk=None
                    if draw(st.booleans())
                    else draw(st.sampled_from(_PATHS)).format(minor),
                    meta_disk=draw(
                        st.one_of(
                            st.just(MetaDisk()),
                            st.builds(
                                MetaDisk,
                                st.sampled_from(_PATHS).map(lambda p, m=minor: p.format(m) + "m"),
                                st.one_of(st.none(), st.integers(0, 99)),
                            ),
                        )
                    ),
                    implicit=not explicit,
                    nbd_address=nbd,
                    disk_options=disk_options,
                )
            )
        hosts.append(
            Host(
                names=() if floating[h] else names[h],
                address=Address(family, ip, 7789),  # type: ignore[arg-type]
                volumes=tuple(volumes),
                floating=floating[h],
            )
        )
    return Resource(name, tuple(hosts), settings)


@st.composite
def _conf(draw: st.DrawFn) -> DrbdConf:
    global_values = {
        spec.field: draw(_value(spec))
        for spec in draw(
            st.lists(st.sampled_from(list(GLOBAL.values())), unique_by=lambda s: s.name)
        )
    }
    common_given = draw(_given())
    common_given = _consistent(common_given)
    names = draw(
        st.lists(
            st.one_of(
                st.from_regex(r"r[a-z0-9_.-]{0,6}", fullmatch=True), st.sampled_from(["r 1", "é"])
            ),
            unique=True,
            max_size=3,
        )
    )
    resources = tuple(draw(_resource(i, name, common_given)) for i, name in enumerate(names))
    return DrbdConf(
        file="drbd.conf",
        global_=Global(**global_values),  # type: ignore[arg-type]
        common=_settings(common_given),
        resources=resources,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_conf())
def test_dump_then_parse_gives_the_model_back(conf: DrbdConf) -> None:
    text = dump(conf)
    again = parse_drbd_conf(text, conf.file, MemFiles({}))
    assert again == conf, text
    assert dump(again) == text
