"""Failure detection: SIGKILL a node, time until the survivors declare it dead.

hastack (3 nodes, 2 ucast links, network namespaces) against heartbeat 3 configured the same
way, in the same run, at keepalive 50 ms / deadtime 200 ms and 1 s / 5 s.

    python benchmarks/detection.py [--runs 20] [--profiles fast,default]

Prints each run and writes benchmarks/results/detection.json.
"""

from __future__ import annotations

import argparse

from _common import (
    PROFILES,
    hastack_detection_runs,
    heartbeat_detection_runs,
    ms,
    on_sigterm_exit,
    require_lab,
    stats,
    write_result,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profiles", default="fast,default", help="fast (50ms/200ms), default")
    args = parser.parse_args()
    require_lab()
    on_sigterm_exit()
    results = {}
    for name in args.profiles.split(","):
        timers = PROFILES[name]
        print(f"== {name}: keepalive {ms(timers.keepalive)}, deadtime {ms(timers.deadtime)}")
        hs = hastack_detection_runs(timers, args.runs)
        hb = heartbeat_detection_runs(timers, args.runs)
        hs_log = stats([r["log"] for r in hs if r["log"] is not None])
        hs_status = stats([r["status"] for r in hs if r["status"] is not None])
        hb_log = stats([r["log"] for r in hb])
        hb_takeover = stats([r["takeover"] for r in hb if r["takeover"] is not None])
        results[name] = {
            "keepalive": timers.keepalive,
            "deadtime": timers.deadtime,
            "target_median": timers.deadtime + 0.05,
            "hastack": {"log": hs_log, "status": hs_status, "runs": hs},
            "heartbeat": {"log": hb_log, "takeover": hb_takeover, "runs": hb},
            "ratio_median_heartbeat_over_hastack": hb_log["median"] / hs_log["median"],
        }
        print(
            f"   hastack   median {ms(hs_log['median'])} p99 {ms(hs_log['p99'])} (log line); "
            f"status poll median {ms(hs_status['median'])} p99 {ms(hs_status['p99'])}\n"
            f"   heartbeat median {ms(hb_log['median'])} p99 {ms(hb_log['p99'])} (log line)\n"
            f"   heartbeat / hastack (median): "
            f"{results[name]['ratio_median_heartbeat_over_hastack']:.2f}x; target median <= "
            f"{ms(timers.deadtime + 0.05)}: "
            f"{'met' if hs_log['median'] <= timers.deadtime + 0.05 else 'MISSED'}"
        )
    path = write_result("detection", {"runs": args.runs, "profiles": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
