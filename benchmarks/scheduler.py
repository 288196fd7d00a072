"""The scheduler against crm_simulate, whole process against whole process, on generated CIBs.

For each size (resources x nodes) a CIB is generated (:mod:`cibgen`: a settled cluster where
most resources already run, with their history and op-digests, plus a few moves, failures,
stops and new resources) and these commands run on the same file, interleaved, ``--runs``
times each (rotating which goes first):

- ``hastack simulate -x CIB --json``: reads the CIB, computes each resource's state, places
  everything, plans the transition, applies it to the status section and prints the final
  placement and the actions;
- ``crm_simulate -x CIB -S`` (the issue's comparison): the same, as Pacemaker's tool does it;
  its simulated execution rewrites the whole CIB once per action;
- ``crm_simulate -x CIB -R``: Pacemaker's scheduler alone (the transition summary, no simulated
  execution): less work than hastack does, so the stricter comparison. (``-s`` is ``-R``
  plus printing every allocation score: tens of thousands of lines at these sizes, which
  would measure printing.)

Each run's wall time, CPU time (user + system, from ``wait4``) and peak RSS are recorded; the
medians, the ratios (crm_simulate / hastack: above 1 means hastack is faster) and the growth
exponents (log time against log resources x nodes) go to ``benchmarks/results/scheduler.json``
and ``python benchmarks/report.py`` renders them. On sizes up to ``--check-upto`` both tools'
final placements and action sets are compared first (crm_simulate's from its dot file), so the
timings are of two schedulers that agree.

    .venv/bin/python benchmarks/scheduler.py                      # the full measurement
    nice -n 10 .venv/bin/python benchmarks/scheduler.py --sizes 10,100 --runs 3 --name dev
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cibgen, _common

from _common import stats, write_result
from cibgen import generate

TOOLS = ("hastack", "crm_S", "crm_R")
LABELS = {
    "hastack": "hastack simulate --json",
    "crm_S": "crm_simulate -S",
    "crm_R": "crm_simulate -R",
}
CRM_ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
# crm_simulate's line for one resource in its status lists, e.g. "* r1\t(ocf:...):\t Started n1"
_STATUS_LINE = re.compile(r"\s*\* (\S+)\t\(([^)]*)\):\t (.*)")
_DOT_ACTION = re.compile(r'"(.+)" \[ style=bold color="green" fontcolor="black"')


def hastack_command() -> list[str]:
    """The installed ``hastack`` beside this interpreter (the console script users run)."""
    script = Path(sys.executable).parent / "hastack"
    if not script.exists():
        sys.exit(f"cannot run: no hastack command beside {sys.executable} (pip install -e .)")
    return [str(script)]


def compile_hastack() -> None:
    """Byte-compile the hastack package, as pip and Debian packages do when they install
    one, so that the timed runs measure the program rather than the compiler. (An editable
    install under PYTHONDONTWRITEBYTECODE, as in CI, would otherwise compile every module
    on every run.) Existing .pyc files are still read with that variable set."""
    # the package the hastack command will import (PYTHONPATH may point elsewhere than the
    # checkout this script puts first on its own path)
    where = subprocess.run(
        [sys.executable, "-c", "import hastack; print(hastack.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    package = Path(where.stdout.strip()).parent
    done = subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=False)
    if done.returncode != 0:
        sys.exit(f"cannot byte-compile {package}")
    print(f"byte-compiled {package}")


def commands(cib: Path) -> dict[str, list[str]]:
    return {
        "hastack": [*hastack_command(), "simulate", "-x", str(cib), "--json"],
        "crm_S": ["crm_simulate", "-x", str(cib), "-S"],
        "crm_R": ["crm_simulate", "-x", str(cib), "-R"],
    }


def timed(cmd: list[str], out: Path, env: dict[str, str] | None) -> dict[str, float]:
    """Run ``cmd`` with its output to a file (both tools alike); wall time, CPU time of the
    process (and its children) and peak RSS from the kernel's ``wait4`` accounting."""
    with out.open("wb") as stdout:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = out.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_mb": usage.ru_maxrss / 1024,
    }


def parse_revised(text: str) -> dict[str, list[str]]:
    """Primitive -> the nodes crm_simulate's "Revised Cluster Status" shows it active on."""
    section = text.split("Revised Cluster Status:", 1)[1]
    out: dict[str, list[str]] = {}
    for raw in section.splitlines():
        m = _STATUS_LINE.fullmatch(raw)
        if not m:
            continue
        words = re.sub(r"\([^)]*\)", " ", m.group(3)).split()
        active = words[:1] in (["Started"], ["FAILED"])
        out[m.group(1)] = sorted(words[1:2]) if active and len(words) > 1 else []
    return out


def _output(cmd: list[str], env: dict[str, str] | None) -> str:
    """The standard output of a command that must succeed (else its error, and the command)."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def check(cib: Path, work: Path) -> dict[str, Any]:
    """Both tools on one CIB: do they agree on the final placement and the action set?"""
    dot = work / "check.dot"
    crm = _output(["crm_simulate", "-x", str(cib), "-S", "-D", str(dot)], CRM_ENV)
    ours = json.loads(_output([*hastack_command(), "simulate", "-x", str(cib), "--json"], None))
    theirs = parse_revised(crm)
    placement = {r: sorted(e["node"] for e in entries) for r, entries in ours["placement"].items()}
    differ = [
        f"{rsc}: crm_simulate {theirs.get(rsc, [])}, hastack {placement.get(rsc, [])}"
        for rsc in sorted(set(theirs) | set(placement))
        if theirs.get(rsc, []) != placement.get(rsc, [])
    ]
    crm_actions = set(_DOT_ACTION.findall(dot.read_text()))
    our_actions = set(ours["actions"])
    return {
        "primitives": len(placement),
        "placement_agrees": len(placement) - len(differ),
        "placement_differences": differ[:20],
        "actions": len(crm_actions),
        "actions_agree": crm_actions == our_actions,
        "actions_only_crm_simulate": sorted(crm_actions - our_actions)[:20],
        "actions_only_hastack": sorted(our_actions - crm_actions)[:20],
    }


def exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log y against log x (the k of y ~ x^k)."""
    if len({x for x, _ in points}) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def growth(cases: list[dict[str, Any]], smallest: int) -> dict[str, Any]:
    """Growth exponents of the median wall time (``TOOL``) and CPU time (``TOOL_cpu``: less
    disturbed by other work on the machine) in x = resources x nodes, fitted over the sizes
    with at least ``smallest`` resources (where the per-resource work, not the start-up of the
    process, dominates), beside the exponent x log x itself has over the same x."""
    big = [c for c in cases if c["resources"] >= smallest]
    xs = [c["resources"] * c["nodes"] for c in big]
    out: dict[str, Any] = {"over_resources_from": smallest, "points": len(big)}
    out["n_log_n"] = exponent([(x, x * math.log(x)) for x in xs])
    for tool in TOOLS:
        for metric, key in (("wall", tool), ("cpu", f"{tool}_cpu")):
            pts = [
                (c["resources"] * c["nodes"], c[tool][metric]["median"]) for c in big if tool in c
            ]
            out[key] = exponent(pts)
    # the same per node count, between consecutive sizes (local exponents)
    local: dict[str, dict[str, list[float | None]]] = {}
    for n in sorted({c["nodes"] for c in cases}):
        row = sorted((c for c in cases if c["nodes"] == n), key=lambda c: c["resources"])
        local[str(n)] = {
            tool: [
                exponent(
                    [
                        (a["resources"], a[tool]["wall"]["median"]),
                        (b["resources"], b[tool]["wall"]["median"]),
                    ]
                )
                for a, b in itertools.pairwise(row)
                if tool in a and tool in b
            ]
            for tool in TOOLS
        }
    out["local_in_resources"] = local
    return out


def targets(cases: list[dict[str, Any]], grow: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, judged on median wall times against crm_simulate -S."""
    both = [c for c in cases if "crm_S" in c and "hastack" in c]
    small = [c for c in both if c["resources"] <= 10]
    large = [c for c in both if c["resources"] >= 1000]
    out: dict[str, Any] = {}
    if small:
        worst = max(c["hastack"]["wall"]["median"] / c["crm_S"]["wall"]["median"] for c in small)
        out["within_2x_at_10"] = {"hastack_over_crm_S_worst": worst, "met": worst <= 2}
    if large:
        slowest = min(c["ratio_S_over_hastack"] for c in large)
        out["faster_from_1000"] = {"crm_S_over_hastack_worst": slowest, "met": slowest > 1}
    # judged only on at least two resource counts from 1,000 up: a fit over node counts alone,
    # or over small sizes where the process start-up dominates, says nothing about growth
    judged = len({c["resources"] for c in cases if c["resources"] >= 1000}) >= 2
    if judged and grow.get("hastack") is not None and grow.get("n_log_n") is not None:
        out["growth"] = {
            "hastack": grow["hastack"],
            "n_log_n": grow["n_log_n"],
            "met": grow["hastack"] <= grow["n_log_n"],
        }
    return out


def measure(
    resources: int,
    nodes: int,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    """Generate one size's CIB, check both tools agree on it, time the commands on it."""
    gen = generate(resources, nodes, seed=args.seed)
    cib = work / f"cib-{resources}x{nodes}.xml"
    cib.write_text(gen.xml)
    case: dict[str, Any] = {
        "resources": resources,
        "nodes": nodes,
        "cib_bytes": len(gen.xml.encode()),
        "changes": {k: list(v) for k, v in vars(gen.changes).items()},
    }
    print(
        f"{resources} resources x {nodes} nodes: CIB {case['cib_bytes'] / 1e6:.1f} MB",
        flush=True,
    )
    if resources <= args.check_upto:
        case["check"] = c = check(cib, work)
        print(
            f"  check: placement {c['placement_agrees']}/{c['primitives']} agree, "
            f"{c['actions']} actions, action sets {'agree' if c['actions_agree'] else 'DIFFER'}",
            flush=True,
        )
        for line in c["placement_differences"]:
            print(f"    {line}")
        if not c["actions_agree"]:
            print(f"    only crm_simulate: {c['actions_only_crm_simulate']}")
            print(f"    only hastack: {c['actions_only_hastack']}")
    cmds = commands(cib)
    tools = [t for t in TOOLS if t in args.tools]
    for tool in tools:
        if tool != "crm_S":  # warm the page cache and Python's bytecode cache; -S is too slow
            timed(cmds[tool], work / "warmup.out", CRM_ENV if tool != "hastack" else None)
    runs: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
    for i in range(args.runs):
        order = tools[i % len(tools) :] + tools[: i % len(tools)]
        for tool in order:
            if len(runs[tool]) >= args.runs or (
                len(runs[tool]) >= args.long_runs and runs[tool][0]["wall"] > args.long_seconds
            ):
                continue  # a command slower than --long-seconds runs only --long-runs times
            env = CRM_ENV if tool != "hastack" else None
            r = timed(cmds[tool], work / f"{tool}.out", env)
            runs[tool].append(r)
            print(
                f"  run {i + 1}: {LABELS[tool]:25s} {r['wall']:8.3f} s wall "
                f"{r['cpu']:8.3f} s CPU {r['maxrss_mb']:7.0f} MB",
                flush=True,
            )
    for tool in tools:
        case[tool] = {
            "wall": stats([r["wall"] for r in runs[tool]]),
            "cpu": stats([r["cpu"] for r in runs[tool]]),
            "maxrss_mb": max(r["maxrss_mb"] for r in runs[tool]),
        }
    hs = case["hastack"]["wall"]["median"] if "hastack" in case else None
    for tool, key in (("crm_S", "ratio_S_over_hastack"), ("crm_R", "ratio_R_over_hastack")):
        if hs and tool in case:
            case[key] = case[tool]["wall"]["median"] / hs
            case[key.replace("ratio", "cpu_ratio")] = (
                case[tool]["cpu"]["median"] / case["hastack"]["cpu"]["median"]
            )
    print(
        "  medians: "
        + ", ".join(f"{LABELS[t]} {case[t]['wall']['median']:.3f} s" for t in tools)
        + "".join(
            f"; {k} {case[k]:.2f}x"
            for k in ("ratio_S_over_hastack", "ratio_R_over_hastack")
            if k in case
        ),
        flush=True,
    )
    return case


def versions() -> dict[str, str]:
    crm = subprocess.run(["crm_simulate", "--version"], capture_output=True, text=True)
    return {"crm_simulate": crm.stdout.splitlines()[0] if crm.stdout else "unknown"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000,5000", help="resource counts")
    parser.add_argument("--nodes", default="16,32", help="node counts")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    parser.add_argument(
        "--long-seconds",
        type=float,
        default=120.0,
        help="a command whose first run takes longer than this ...",
    )
    parser.add_argument("--long-runs", type=int, default=3, help="... runs only this often")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--check-upto",
        type=int,
        default=1000,
        help="compare both tools' placement and actions on sizes up to this many resources",
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help="of " + ", ".join(TOOLS))
    parser.add_argument("--keep", metavar="DIR", help="keep the generated CIBs and outputs here")
    parser.add_argument("--name", default="scheduler", help="results/NAME.json")
    args = parser.parse_args()
    args.tools = args.tools.split(",")
    if shutil.which("crm_simulate") is None:
        sys.exit("cannot run: crm_simulate not installed (Debian: pacemaker-cli-utils)")
    compile_hastack()
    sizes = [int(s) for s in args.sizes.split(",")]
    node_counts = [int(n) for n in args.nodes.split(",")]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hastack-sched-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            cases = [measure(r, n, args, work) for r in sorted(sizes) for n in sorted(node_counts)]
        except RuntimeError as exc:  # a tool failed: say which, with its output
            sys.exit(f"scheduler benchmark: {exc}")
    grow = growth(cases, smallest=min(1000, max(sizes)))
    result = {
        "runs": args.runs,
        "seed": args.seed,
        "sizes": sizes,
        "node_counts": node_counts,
        "commands": {t: LABELS[t] for t in args.tools},
        "versions": versions(),
        "cases": cases,
        "growth": grow,
        "targets": targets(cases, grow),
        "duration_s": time.monotonic() - started,
    }
    path = write_result(args.name, result)
    print(f"growth exponents over x = resources x nodes: {json.dumps(grow)}")
    print(f"targets: {json.dumps(result['targets'])}")
    print(f"wrote {path} ({result['duration_s']:.0f} s)")


if __name__ == "__main__":
    main()
