"""hastack.availability.model and .montecarlo: exact series/parallel formulas, default figures,
before/after gains, and the analytic availability checked against a Monte-Carlo simulation."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from hastack.availability import nines as nn
from hastack.availability.model import (
    DEFAULT_FIGURES,
    Block,
    Component,
    ModelError,
    Parallel,
    Series,
    compare,
    component,
    figures_from_dict,
    load_figures,
)
from hastack.availability.montecarlo import simulate

# Accelerated figures (hours) so that a simulation sees many failures: A = 0.9, 0.8, 0.95.
A = Component("a", 9, 1)
B = Component("b", 4, 1)
C = Component("c", 19, 1)


def test_component_availability_is_mttf_over_mttf_plus_mttr() -> None:
    assert A.availability() == pytest.approx(0.9)
    assert A.nines() == pytest.approx(1)
    assert A.downtime_per_year() == pytest.approx(0.1 * nn.YEAR)
    assert Component("web", 239, 1).availability() == pytest.approx(239 / 240)  # the seed's site


def test_series_multiplies() -> None:
    assert Series([A, B, C]).availability() == pytest.approx(0.9 * 0.8 * 0.95)


def test_parallel_of_two_fails_only_when_both_fail() -> None:
    assert Parallel([A, B]).availability() == pytest.approx(1 - 0.1 * 0.2)


def test_two_of_three() -> None:
    a, b, c = 0.9, 0.8, 0.95
    exact = a * b * c + (1 - a) * b * c + a * (1 - b) * c + a * b * (1 - c)
    assert Parallel([A, B, C], need=2).availability() == pytest.approx(exact)
    same = Component("x", 9, 1), Component("y", 9, 1), Component("z", 9, 1)
    assert Parallel(same, need=2).availability() == pytest.approx(3 * 0.9**2 - 2 * 0.9**3)


def test_need_all_is_a_series_and_need_one_is_plain_parallel() -> None:
    assert Parallel([A, B, C], need=3).availability() == pytest.approx(
        Series([A, B, C]).availability()
    )
    assert Parallel([A, B, C], need=1).availability() == pytest.approx(1 - 0.1 * 0.2 * 0.05)


def test_nested() -> None:
    model = Series([C, Parallel([Series([A, B]), Component("d", 3, 1)])])
    assert model.availability() == pytest.approx(0.95 * (1 - (1 - 0.72) * (1 - 0.75)))


def test_a_component_named_twice_is_one_shared_component() -> None:
    # Two paths through one switch: the switch is a SPOF, not two independent switches.
    switch = Component("switch", 19, 1)
    model = Parallel([Series([switch, A]), Series([switch, B])])
    assert model.availability() == pytest.approx(0.95 * (1 - 0.1 * 0.2))
    independent = 1 - (1 - 0.95 * 0.9) * (1 - 0.95 * 0.8)
    assert model.availability() < independent


def test_downtime_per_year_and_nines_of_a_model() -> None:
    model = Parallel([A, B])
    assert model.nines() == pytest.approx(-math.log10(0.02))
    assert model.downtime_per_year() == pytest.approx(0.02 * 365 * 86400)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Component("x", 0, 1), "MTTF must be a number of hours > 0"),
        (lambda: Component("x", 10, math.nan), "MTTR must be"),
        (lambda: Component("x", "10h", 1), "MTTF must be a number"),
        (lambda: Series([]), "has no parts"),
        (lambda: Parallel([A, B], need=3), "need must be a whole number from 1 to 2"),
        (lambda: Parallel([A, B], need=0), "from 1 to 2"),
        (lambda: Series([A, "disk"]), "must be a Component, Series or Parallel"),
        (
            lambda: Series([A, Component("a", 5, 1)]).availability(),
            "two different components are named 'a'",
        ),
    ],
)
def test_bad_models_say_what_is_allowed(build: object, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build()  # type: ignore[operator]


# --- figures --------------------------------------------------------------------------------


def test_default_figures_cover_the_usual_components_and_say_where_they_come_from() -> None:
    assert {
        "server",
        "disk",
        "power_supply",
        "nic",
        "network_link",
        "network_switch",
        "os",
        "application",
        "human_error",
        "utility_power",
    } <= set(DEFAULT_FIGURES)
    for kind, figure in DEFAULT_FIGURES.items():
        assert figure.note, kind
        assert 0.99 < figure.availability() < 1, kind


def test_component_from_figures() -> None:
    disk = component("disk", name="disk-node1")
    assert disk.name == "disk-node1"
    assert disk.mttf_hours == DEFAULT_FIGURES["disk"].mttf_hours
    with pytest.raises(ModelError, match=r"unknown kind of component 'floppy'; known: .*disk"):
        component("floppy")


def test_figures_overridden_from_a_dict() -> None:
    figures = figures_from_dict(
        {"os": {"mttr": "5m"}, "san": {"mttf": "6 months", "mttr": 4, "note": "our SAN"}}
    )
    assert figures["os"].mttr_hours == pytest.approx(5 / 60)
    assert figures["os"].mttf_hours == DEFAULT_FIGURES["os"].mttf_hours  # kept
    assert figures["san"].mttf_hours == pytest.approx(365 * 24 / 2)
    assert figures["san"].note == "our SAN"
    assert DEFAULT_FIGURES["os"].mttr_hours == 1  # the defaults are not changed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"disk": {"mtbf": "10h"}}, r"\[disk\]: unknown key\(s\) mtbf; allowed: mttf, mttr, note"),
        ({"san": {"mttf": "10h"}}, r"\[san\]: a new kind of component needs both mttf and mttr"),
        ({"disk": {"mttr": "soon"}}, r"\[disk\] mttr: cannot read 'soon'"),
        ({"disk": {"mttr": -3}}, r"\[disk\] mttr: must be longer than zero"),
        ({"disk": {"mttr": True}}, r"\[disk\] mttr: write a duration"),
        ({"disk": "300000h"}, r"\[disk\] must be a table with mttf and mttr"),
    ],
)
def test_bad_figures_name_the_entry(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=r"^myfigures: " + message):
        figures_from_dict(overrides, source="myfigures")


def test_figures_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "figures.toml"
    path.write_text('[disk]\nmttf = "1000000h"\nmttr = "8h"\n\n[application]\nmttr = 0.05\n')
    figures = load_figures(path)
    assert figures["disk"].mttf_hours == 1_000_000
    assert figures["disk"].mttr_hours == 8
    assert figures["application"].mttr_hours == pytest.approx(0.05)
    assert figures["disk"].note == f"from {path}"


def test_bad_figures_files_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[disk\nmttf = 3\n")
    with pytest.raises(ModelError, match=f"^{broken}: not valid TOML .*line 1"):
        load_figures(broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[disk]\nmttf = "forever"\n')
    with pytest.raises(ModelError, match=rf"^{wrong}: \[disk\] mttf: cannot read 'forever'"):
        load_figures(wrong)
    with pytest.raises(ModelError, match=r"missing\.toml: cannot read the figures file"):
        load_figures(tmp_path / "missing.toml")


# --- before / after -------------------------------------------------------------------------


def _node(name: str) -> Series:
    kinds = ("server", "power_supply", "disk", "nic", "os", "application")
    return Series([component(k, name=f"{k}-{name}") for k in kinds], name=name)


def test_a_cluster_of_two_nodes_adds_at_least_a_nine() -> None:
    before, after = _node("n1"), Parallel([_node("n1"), _node("n2")])
    gain = compare(before, after)
    assert gain.before == pytest.approx(before.availability())
    assert gain.after == pytest.approx(after.availability())
    assert gain.added_nines == pytest.approx(after.nines() - before.nines())
    assert gain.downtime_saved_per_year == pytest.approx(
        before.downtime_per_year() - after.downtime_per_year()
    )
    # "A good HA clustering system adds a 9 to your base availability" (more, here: this
    # model has no failover time and no common cause).
    assert gain.added_nines >= 1
    assert gain.to_dict()["added_nines"] == gain.added_nines


def test_shared_parts_cap_what_the_cluster_adds() -> None:
    # With the default figures, one switch, the mains and the operator in front of both nodes
    # keep the gain under a nine: they are what to fix next.
    shared = [component("network_switch"), component("utility_power"), component("human_error")]
    gain = compare(
        Series([*shared, _node("n1")]), Series([*shared, Parallel([_node("n1"), _node("n2")])])
    )
    assert 0 < gain.added_nines < 1
    assert gain.after < Series(shared).availability()


def test_a_change_for_the_worse_is_a_negative_gain() -> None:
    gain = compare(Parallel([A, B]), A)
    assert gain.added_nines < 0 and gain.downtime_saved_per_year < 0


# --- Monte-Carlo ----------------------------------------------------------------------------

HORIZON = 200_000.0  # hours: ~20,000 failures of A (cycle 10 h), ~4,000 batches' worth each


def test_single_component_within_the_theoretical_noise() -> None:
    # For one exponential up/down component the time-average of "up" over T has variance
    # 2 A (1 - A) tau / T, tau = MTTF MTTR / (MTTF + MTTR): sigma = 0.0009 here.
    result = simulate(A, random.Random(1), HORIZON)
    tau = 9 * 1 / 10
    sigma = math.sqrt(2 * 0.9 * 0.1 * tau / HORIZON)
    assert abs(result.availability - 0.9) < 4 * sigma
    # The batch-means standard error (used for the models below) agrees with the theory.
    assert sigma / 2 < result.stderr < sigma * 2
    assert result.transitions > 30_000


MODELS: dict[str, Block] = {
    "single": Component("s", 4, 1),
    "series of 3": Series([A, B, C]),
    "parallel of 2": Parallel([A, B]),
    "2 of 3": Parallel([A, B, C], need=2),
    "nested with a shared switch": Series(
        [
            Component("mains", 30, 2),
            Parallel(
                [
                    Series([Component("switch", 19, 1), A]),
                    Series([Component("switch", 19, 1), B, Component("d", 14, 1)]),
                ]
            ),
        ]
    ),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_analytic_availability_agrees_with_monte_carlo(name: str) -> None:
    model = MODELS[name]
    result = simulate(model, random.Random(2024), HORIZON)
    # The tolerance is 4 standard errors of the estimate (batch means over 32 batches of
    # 6,250 h, each hundreds of cycles of the slowest component); the horizon keeps that
    # standard error small, so the test has teeth: a wrong formula is off by far more.
    assert result.stderr < 0.002
    assert abs(result.availability - model.availability()) < 4 * result.stderr


def test_monte_carlo_tells_shared_from_independent() -> None:
    # The same model with the switch counted twice as independent would be clearly off.
    shared = MODELS["nested with a shared switch"]
    result = simulate(shared, random.Random(7), HORIZON)
    independent = Series(
        [
            Component("mains", 30, 2),
            Parallel(
                [
                    Series([Component("switch1", 19, 1), A]),
                    Series([Component("switch2", 19, 1), B, Component("d", 14, 1)]),
                ]
            ),
        ]
    )
    assert abs(result.availability - independent.availability()) > 6 * result.stderr


def test_monte_carlo_replays_from_its_seed() -> None:
    model = MODELS["2 of 3"]
    first = simulate(model, random.Random(5), 20_000)
    assert simulate(model, random.Random(5), 20_000) == first
    assert simulate(model, random.Random(6), 20_000) != first


def test_monte_carlo_bad_arguments() -> None:
    with pytest.raises(ModelError, match="horizon must be a number of hours > 0"):
        simulate(A, random.Random(1), 0)
    with pytest.raises(ModelError, match="at least 2 batches"):
        simulate(A, random.Random(1), 100, batches=1)
