"""DC re-election: SIGKILL the DC, time until a new DC acts and until all survivors agree.

hastack (3 nodes, 2 links, network namespaces) at keepalive 50 ms / deadtime 200 ms and
1 s / 5 s. Target: median <= deadtime + 200 ms. heartbeat 3 without Pacemaker has no DC; as
its closest event the same run records heartbeat's resource takeover for a killed node
("mach_down takeover complete"), with the same timers.

    python benchmarks/reelection.py [--runs 20] [--profiles fast,default]

Prints each run and writes benchmarks/results/reelection.json.
"""

from __future__ import annotations

import argparse

from _common import (
    PROFILES,
    hastack_reelection_runs,
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
    parser.add_argument("--no-heartbeat", action="store_true", help="skip the heartbeat runs")
    args = parser.parse_args()
    require_lab()
    on_sigterm_exit()
    results = {}
    for name in args.profiles.split(","):
        timers = PROFILES[name]
        print(f"== {name}: keepalive {ms(timers.keepalive)}, deadtime {ms(timers.deadtime)}")
        hs = hastack_reelection_runs(timers, args.runs)
        reelection = stats([r["reelection"] for r in hs if r["reelection"] is not None])
        acting = stats([r["acting"] for r in hs if r.get("acting") is not None])
        reelection_log = stats([r["reelection_log"] for r in hs if r["reelection_log"] is not None])
        detection = stats([r["detection"] for r in hs if r["detection"] is not None])
        target = timers.deadtime + 0.2
        entry = {
            "keepalive": timers.keepalive,
            "deadtime": timers.deadtime,
            "target_median": target,
            "hastack": {
                "acting": acting,
                "reelection": reelection,
                "reelection_log": reelection_log,
                "detection": detection,
                "runs": hs,
            },
        }
        print(
            f"   hastack new DC acting: median {ms(acting['median'])} p99 {ms(acting['p99'])}; "
            f"agreed by all survivors: median {ms(reelection['median'])} "
            f"p99 {ms(reelection['p99'])} (status poll); dc-elected log line median "
            f"{ms(reelection_log['median'])}; target median <= {ms(target)}: acting "
            f"{'met' if acting['median'] <= target else 'MISSED'}, agreed "
            f"{'met' if reelection['median'] <= target else 'MISSED'}"
        )
        if not args.no_heartbeat:
            hb = heartbeat_detection_runs(timers, args.runs)
            takeover = stats([r["takeover"] for r in hb if r["takeover"] is not None])
            entry["heartbeat"] = {"takeover": takeover, "runs": hb}
            entry["ratio_median_heartbeat_takeover_over_hastack"] = (
                takeover["median"] / acting["median"]
            )
            print(
                f"   heartbeat takeover: median {ms(takeover['median'])} "
                f"p99 {ms(takeover['p99'])}; ratio "
                f"{entry['ratio_median_heartbeat_takeover_over_hastack']:.2f}x"
            )
        results[name] = entry
    path = write_result("reelection", {"runs": args.runs, "profiles": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
