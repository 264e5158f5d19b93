"""`python -m bench`: throughput of the worker against a plain-consumer baseline; a table and a JSON file."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.throughput import BenchConfig, run

RESULTS = Path(__file__).resolve().parent / "results"


def fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def table(res: dict[str, Any]) -> str:
    ds, cfg = res["dataset"], res["config"]
    lines = [
        f"Drukte throughput: {ds['readings']:,} readings, {cfg['per_message']} per message "
        f"({ds['messages']:,} messages, {ds['message_bytes'] / 1e6:.1f} MB), {cfg['partitions']} partitions, "
        f"{ds['zones']} zones x {ds['sensors'] // ds['zones']} sensors, {ds['windows']:,} windows "
        f"({ds['t0']} .. {ds['end']})",
        f"machine: {res['machine']['cpus']} cpus, load {res['machine']['loadavg_before']} -> "
        f"{res['machine']['loadavg_after']}; produce {res['produce_s']} s; whole run {res['duration_s']} s",
        f"worker code: {res['source']}",
        "",
        f"{'run':>3}  {'contender':<9} {'total s':>8} {'readings/s':>11} {'ratio':>7}   "
        f"{'steady s':>8} {'readings/s':>11} {'ratio':>7}   {'cpu s':>6} {'broker cpu':>10}  correct",
    ]
    for r in res["runs"]:
        for name in ("baseline", "worker"):
            c = r[name]
            rt = r["ratio"]["total"] if name == "worker" else 1.0
            rs = r["ratio"]["steady"] if name == "worker" else 1.0
            lines.append(
                f"{r['run']:>3}  {name:<9} {fmt(c['total_s'], '.2f'):>8} {fmt(c['rate_total']):>11} "
                f"{fmt(rt, '.4f'):>7}   {fmt(c['steady_s'], '.2f'):>8} {fmt(c['rate_steady']):>11} "
                f"{fmt(rs, '.4f'):>7}   {fmt(c['cpu_s'], '.1f'):>6} {fmt(c['broker_cpu_s'], '.1f'):>10}  "
                f"{'OK' if c['correct'] else 'FAIL'}")
    lines.append("")
    lines.append("total: from start (consumer created / process spawned) to done; steady: from the first input "
                 "record consumed to done. Baseline done = all readings summed and written; worker done = every "
                 "window in Redis.")
    for r in res["runs"]:
        w = r["worker"]
        m = w.get("metrics", {})
        c2s = m.get("close_to_store", {})
        lines += [
            "",
            f"run {r['run']} worker: first input {fmt(w['first_input_s'], '.2f')} s, all readings counted "
            f"{fmt(w['all_counted_s'], '.2f')} s ({fmt(w['rate_counted'])} readings/s from first input), first "
            f"window {fmt(w['first_window_s'], '.2f')} s, all windows {fmt(w['total_s'], '.2f')} s "
            f"({fmt(w['from_first_window_s'], '.2f')} s after the first; tail after counting "
            f"{fmt(w['tail_after_counted_s'], '.2f')} s); longest time without progress "
            f"{w['max_progress_gap_s']} s at +{w['max_progress_gap_at_s']} s",
            f"  peak RSS {fmt(w.get('peak_rss_mb'), '.0f')} MB, cpu {fmt(w.get('cpu_s'), '.1f')} s, broker cpu "
            f"{fmt(w.get('broker_cpu_s'), '.1f')} s, store cpu {fmt(w.get('store_cpu_s'), '.1f')} s",
            f"  metrics: messages {m.get('messages_in')}, readings {m.get('readings_in')}, late {m.get('late')} "
            f"(untracked {m.get('late_untracked')}), "
            f"duplicates {m.get('duplicates')}, rejected {m.get('rejected')}, windows published "
            f"{m.get('windows_published')} (suppressed {m.get('windows_suppressed')}), redis errors "
            f"{m.get('redis_errors')}",
            f"  close_to_store: {c2s.get('count')} windows observed, mean {c2s.get('mean_s')} s, p50 <= "
            f"{c2s.get('p50_le_s')} s, p95 <= {c2s.get('p95_le_s')} s, p99 <= {c2s.get('p99_le_s')} s",
        ]
        if w.get("error"):
            lines.append(f"  ERROR: {w['error']}")
        v = w.get("verify")
        if v:
            lines.append(f"  verify: {'OK' if v['correct'] else 'FAIL'}, {v['checked']:,} windows checked, "
                         f"{v['counts']}; problems per zone {v['problems_per_zone']}")
            lines += [f"    {orjson.dumps(p).decode()}" for p in v["mismatches"]]
        b = r["baseline"]
        if b.get("error") or b["mismatches"]:
            lines.append(f"  baseline: {b.get('error', '')} {b['mismatches']}")
        if w.get("log"):
            lines.append(f"  worker log kept: {w['log']}")
    s = res["summary"]
    lines += ["", f"median over {len(res['runs'])} run(s): worker/baseline {fmt(s['ratio_total'], '.4f')} "
              f"(total), {fmt(s['ratio_steady'], '.4f')} (steady); all correct: {s['all_correct']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--readings", type=int, default=200_000,
                   help="readings to send (rounded down to whole 5-minute windows of all sensors)")
    p.add_argument("--per-message", type=int, default=100, help="readings per footfall batch message")
    p.add_argument("--runs", type=int, default=1, help="baseline + worker pairs on the same data")
    p.add_argument("--gateways", type=int, default=8,
                   help="sources, one per input partition, each owning every n-th zone (1: one time-ordered log)")
    p.add_argument("--worker-src", help="run the worker from this source tree instead of the repository "
                   "(e.g. a `git archive HEAD` snapshot while the working tree is mid-edit)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per contender and run")
    args = p.parse_args(argv)
    if min(args.readings, args.per_message, args.runs, args.gateways) < 1:
        p.error("--readings, --per-message, --runs and --gateways must be positive")
    cfg = BenchConfig(readings=args.readings, per_message=args.per_message, runs=args.runs,
                      gateways=args.gateways, timeout_s=args.timeout,
                      worker_src=str(Path(args.worker_src).resolve()) if args.worker_src else None)
    res = run(cfg, RESULTS)
    print(table(res))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    print(f"\nresults: {path}")
    return 0 if res["summary"]["all_correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
