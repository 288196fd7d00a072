"""Failover of a floating IP: time from a fault of the active node to the client's first new
TCP connection to the address, for hastack, keepalived (VRRPv3) and heartbeat 3.

Same lab, same run: for each stack a 2-node cluster (n1 active, n2 standby, two links) and a
`client` host, in network namespaces. Faults: `crash` (the active node's host is powered off:
every process SIGKILLed, its interfaces down) and `cut` (every link of the active node dropped
by nftables). Timer profiles, equal for the three: `fast` keepalive / VRRP advert_int 10 ms,
deadtime 30 ms; `default` 1 s / 3 s (keepalived's master-down interval is 3 x advert_int +
skew, its deadtime). Fencing is off (stonith-enabled=false) for `hastack`; the stacks
`hastack-fence_dummy` (Debian's fence_dummy in the path; crashes only, since it powers nothing
off) and `hastack-fence_power` (an external device powering the lab host off, as a power
switch) fence the lost node before the address moves, with priority-fencing-delay 1 s; both
crashes only (with fencing, a cut active node wins the fence race and keeps the address).
`hastack-watchdog` is watchdog self-fencing: three nodes (two_node cannot use it), each feeding
a stand-in watchdog that powers its host off when not fed (this machine has no softdog), the
`hastack/watchdog` device and stonith-watchdog-timeout 2 s (`fast`) or 10 s (`default`): the
survivors move the address once that has passed; crashes and cuts.

    python benchmarks/failover.py [--runs 20] [--profiles fast,default]
        [--stacks hastack,keepalived,heartbeat] [--faults crash,cut] [--keep] [--out NAME]
    python benchmarks/failover.py --false-failover MINUTES

Prints each run and a summary with ratios; writes benchmarks/results/failover.json (or
failover-false.json for --false-failover).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import subprocess
import sys
import time
from typing import Any

from _common import Timers, ms, on_sigterm_exit, require_lab, stats, write_result
from _failover_stacks import STACKS, HastackStack, Prober, wait_ready

FAILOVER_PROFILES = {
    "fast": Timers(keepalive=0.01, deadtime=0.03),
    "default": Timers(keepalive=1.0, deadtime=3.0),
}
FAULTS = ("crash", "cut")
FALSE_TIMERS = Timers(keepalive=0.05, deadtime=0.2)
FENCED = ("hastack-fence_dummy", "hastack-fence_power", "hastack-watchdog")
CRASH_ONLY = {
    "hastack-fence_dummy": "fence_dummy powers nothing off: a cut node would stay up",
    # with fencing, a cut active node wins the two-node fence race (priority-fencing-delay)
    # and powers the standby off: the address never moves, there is no failover to time
    "hastack-fence_power": "a cut active node wins the fence race: the address does not move",
}


def parse_list(text: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    """A comma-separated choice list; a clear error naming what is allowed."""
    items = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in items if w not in allowed]
    if not items or bad:
        raise argparse.ArgumentTypeError(
            f"{what}: {', '.join(bad) or 'none given'} not known; allowed: {', '.join(allowed)}"
        )
    return items


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """median(a) / median(b), None when either is missing or b's median is zero."""
    if not a or not b or a.get("n", 0) == 0 or b.get("n", 0) == 0 or not b["median"]:
        return None
    return float(a["median"]) / float(b["median"])


def ratios(by_stack: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per fault: hastack/keepalived and heartbeat/hastack, from the medians."""
    out = {}
    for fault in FAULTS:
        st = {s: v[fault]["stats"] for s, v in by_stack.items() if fault in v}
        if st:
            out[fault] = {
                "hastack_over_keepalived": ratio(st.get("hastack"), st.get("keepalived")),
                "heartbeat_over_hastack": ratio(st.get("heartbeat"), st.get("hastack")),
            }
    return out


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def run_stack(
    name: str, profile: str, timers: Timers, faults: list[str], runs: int, keep: bool
) -> dict[str, Any]:
    """All runs of one stack at one profile, in one lab; each fault `runs` times."""
    out: dict[str, Any] = {}
    stable = max(0.5, 2 * timers.deadtime)
    with STACKS[name](timers, keep=keep) as stack:
        prober = Prober(stack.lab, stack.vip)  # type: ignore[arg-type]
        try:
            victim = wait_ready(stack, prober, stable, timeout=120)
            for fault in faults:
                samples: list[float] = []
                details: list[dict[str, Any]] = []
                for i in range(runs):
                    dc = stack.dc()
                    time.sleep(random.uniform(0, timers.keepalive))  # any phase of the cycle
                    wall = time.time()  # to find the fault in the node logs (wall clock)
                    t_fault = stack.fault(fault, victim)  # type: ignore[arg-type]
                    took = prober.wait_failover(t_fault, timeout=3 * timers.deadtime + 30)
                    new = stack.holders()
                    survivor = next(n for n in stack.nodes if n != victim)
                    details.append(
                        {
                            "run": i,
                            "victim": victim,
                            "seconds": took,
                            "holders_after": new,
                            "fault_wall": wall,
                            "dc_before": dc,
                        }
                    )
                    if took is not None:
                        samples.append(took)
                    print(
                        f"  {name:10s} {profile:7s} {fault:5s} run {i + 1:2d}: {victim} -> "
                        f"{','.join(new) or 'none'}: {ms(took)}"
                        + (f" (DC was {dc})" if dc else ""),
                        flush=True,
                    )
                    stack.recover(fault, victim)  # type: ignore[arg-type]
                    next_victim = wait_ready(stack, prober, stable, timeout=120)
                    steps = stack.timeline(survivor, wall)  # its log is complete by now
                    if steps is not None:
                        details[-1]["survivor_log_ms"] = steps
                        print(f"     {survivor}'s log, ms after the fault: {steps}", flush=True)
                    victim = next_victim
                out[fault] = {"stats": stats(samples), "samples": samples, "runs": details}
        finally:
            prober.close()
    return out


def summary(results: dict[str, Any]) -> list[str]:
    """The summary lines: per profile and fault, each stack's median / p99 and the ratios."""
    lines = []
    for profile, by_stack in results.items():
        faults = sorted({f for s in by_stack.values() for f in s}, key=FAULTS.index)
        for fault in faults:
            st = {s: by_stack[s][fault]["stats"] for s in by_stack if fault in by_stack[s]}
            parts = [
                f"{s} {ms(v.get('median'))} (p99 {ms(v.get('p99'))}, n={v['n']})"
                for s, v in st.items()
            ]
            lines.append(f"{profile} {fault}: " + "; ".join(parts))
            lines.append(
                f"   hastack/keepalived {fmt_ratio(ratio(st.get('hastack'), st.get('keepalived')))}"
                f", heartbeat/hastack {fmt_ratio(ratio(st.get('heartbeat'), st.get('hastack')))}"
                + "".join(
                    f", {f}/hastack {fmt_ratio(ratio(st.get(f), st.get('hastack')))}"
                    for f in FENCED
                    if f in st
                )
            )
    return lines


# ---------------------------------------------------------------- false failovers
HOG = "while True: pass"
DEAD_RE = re.compile(r"\bnode-(dead|lost)\b")
DC_RE = re.compile(r"\bdc-elected\b")
LATE_RE = re.compile(r"\bheartbeat-late\b")
POLICIES = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}


def policy_name(policy: int | None) -> str | None:
    """sched_getscheduler()'s answer by name (SCHED_RESET_ON_FORK shown as a suffix)."""
    if policy is None:
        return None
    reset = policy & os.SCHED_RESET_ON_FORK
    name = POLICIES.get(policy & ~os.SCHED_RESET_ON_FORK, str(policy & ~os.SCHED_RESET_ON_FORK))
    return name + ("|SCHED_RESET_ON_FORK" if reset else "")


def count_log_events(text: str) -> dict[str, int]:
    """Membership losses and DC elections in a hastack node log (its structured lines)."""
    lines = text.splitlines()
    return {
        "node_dead_lines": sum(1 for line in lines if DEAD_RE.search(line)),
        "dc_elected_lines": sum(1 for line in lines if DC_RE.search(line)),
        "late_heartbeat_lines": sum(1 for line in lines if LATE_RE.search(line)),
    }


def false_failover(minutes: float, keep: bool) -> dict[str, Any]:
    """hastack 2-node at 50/200 ms, `realtime on`, both cores busy: count what moved."""
    ncpu = os.cpu_count() or 1
    hogs: list[subprocess.Popen[bytes]] = []
    counts = {"dc_changes": 0, "membership_losses": 0, "ip_moves": 0, "samples": 0}
    with HastackStack(FALSE_TIMERS, keep=keep, extra_hacf=("realtime on",)) as stack:
        assert stack.cluster is not None
        prober = Prober(stack.lab, stack.vip, period=0.01, timeout=0.05)  # type: ignore[arg-type]
        try:
            wait_ready(stack, prober, 1.0, timeout=120)
            before = {n: len(stack.cluster[n].log()) for n in stack.nodes}
            policy = {}
            for n in stack.nodes:
                proc = stack.cluster[n].process
                try:  # the daemon is a child of `ip netns exec`, which execs: same PID
                    pol = os.sched_getscheduler(proc.pid) if proc else None
                except OSError:
                    pol = None
                policy[n] = policy_name(pol)
            print(f"  daemons' scheduling policy: {policy}")
            for _ in range(ncpu):
                hogs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", HOG],
                        preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0),  # nice 0
                    )
                )
            print(f"  {ncpu} CPU hogs at nice 0 for {minutes:g} min")
            last = stack.cluster.statuses(list(stack.nodes))
            holder = stack.holders()
            start = time.monotonic()
            end = start + minutes * 60
            next_ip = 0.0
            while time.monotonic() < end:
                now_st = stack.cluster.statuses(list(stack.nodes))
                counts["samples"] += 1
                for n in stack.nodes:
                    a, b = last.get(n), now_st.get(n)
                    if a and b and a.get("dc") != b.get("dc"):
                        counts["dc_changes"] += 1
                    full = sorted(stack.nodes)
                    if (
                        b
                        and a
                        and sorted(b.get("members", [])) != full
                        and sorted(a.get("members", [])) == full
                    ):
                        counts["membership_losses"] += 1
                last = {n: now_st.get(n) or last.get(n) for n in stack.nodes}
                if time.monotonic() >= next_ip:
                    h = stack.holders()
                    if h != holder:
                        counts["ip_moves"] += 1
                        holder = h
                    next_ip = time.monotonic() + 0.5
                time.sleep(0.05)
            # the client's view: each time a connect failed after one had succeeded
            counts["client_outages"] = sum(
                1 for e in prober.drain() if not e.up and start <= e.end <= end
            )
        finally:
            for h in hogs:
                h.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    h.wait(5)
            prober.close()
        logs = {n: stack.cluster[n].log()[before[n] :] for n in stack.nodes}
        log_counts = {n: count_log_events(t) for n, t in logs.items()}
        realtime_warn = {n: "realtime-unavailable" in stack.cluster[n].log() for n in logs}
    return {
        "minutes": minutes,
        "keepalive": FALSE_TIMERS.keepalive,
        "deadtime": FALSE_TIMERS.deadtime,
        "hogs": ncpu,
        "polled": counts,
        "logs": log_counts,
        "realtime_unavailable": realtime_warn,
        "scheduling_policy": policy,
        "target": "zero DC changes, membership losses, IP moves and client outages",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profiles", default="fast,default", help="fast (10/30 ms), default")
    parser.add_argument("--stacks", default="hastack,keepalived,heartbeat")
    parser.add_argument("--faults", default="crash,cut")
    parser.add_argument("--keep", action="store_true", help="keep node logs (paths printed)")
    parser.add_argument(
        "--out", default="failover", help="results file name in benchmarks/results (no .json)"
    )
    parser.add_argument(
        "--false-failover", type=float, metavar="MINUTES", help="count false failovers instead"
    )
    args = parser.parse_args()
    try:
        profiles = parse_list(args.profiles, list(FAILOVER_PROFILES), "--profiles")
        stacks = parse_list(args.stacks, list(STACKS), "--stacks")
        faults = parse_list(args.faults, FAULTS, "--faults")
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    require_lab()
    on_sigterm_exit()
    if args.false_failover is not None:
        if args.false_failover <= 0:
            parser.error("--false-failover takes a positive number of minutes")
        res = false_failover(args.false_failover, args.keep)
        print(f"  polled: {res['polled']}; logs: {res['logs']}")
        print(f"wrote {write_result('failover-false', res)}")
        return
    results: dict[str, Any] = {}
    try:
        for profile in profiles:
            timers = FAILOVER_PROFILES[profile]
            print(f"== {profile}: keepalive {ms(timers.keepalive)}, deadtime {ms(timers.deadtime)}")
            results[profile] = {}
            for s in stacks:
                chosen = [f for f in faults if f == "crash" or s not in CRASH_ONLY]
                if chosen != faults:
                    print(f"   {s}: crashes only ({CRASH_ONLY[s]})")
                results[profile][s] = run_stack(s, profile, timers, chosen, args.runs, args.keep)
    except (TimeoutError, RuntimeError, OSError) as e:
        sys.exit(f"failover benchmark stopped: {e}")
    lines = summary(results)
    print("\n".join(lines))
    data = {
        "runs": args.runs,
        "profiles": {
            p: {
                "keepalive": FAILOVER_PROFILES[p].keepalive,
                "deadtime": FAILOVER_PROFILES[p].deadtime,
                "stacks": r,
                "ratios": ratios(r),
            }
            for p, r in results.items()
        },
        "summary": lines,
    }
    print(f"wrote {write_result(args.out, data)}")


if __name__ == "__main__":
    main()
