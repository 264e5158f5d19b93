"""`python -m bench`: throughput of the worker against a plain-consumer ceiling and the obvious Faust app."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.throughput import ENCODINGS, BenchConfig, run

RESULTS = Path(__file__).resolve().parent / "results"
CONTENDERS = ("baseline", "faust", "worker", "worker2")


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
        f"code: {res['source']}",
        "",
        f"{'run':>3}  {'contender':<9} {'span s':>8} {'readings/s':>11} {'ratio':>7}   {'steady r/s':>11} "
        f"{'ratio':>7}   {'at cap r/s':>10} {'ratio':>7}   {'RSS MB':>6} {'cpu s':>6} {'broker':>6}  correct",
    ]
    for r in res["runs"]:
        for name in cfg["contenders"]:
            c = r[name]
            q = c["ratio"]
            lines.append(
                f"{r['run']:>3}  {name:<9} {fmt(c['span_s'], '.2f'):>8} {fmt(c['rate']):>11} "
                f"{fmt(q['rate'], '.4f'):>7}   {fmt(c['rate_steady']):>11} {fmt(q['rate_steady'], '.4f'):>7}   "
                f"{fmt(c.get('rate_at_cap')):>10} {fmt(q.get('rate_at_cap'), '.4f'):>7}   "
                f"{fmt(c.get('peak_rss_mb'), '.0f'):>6} {fmt(c.get('cpu_s'), '.1f'):>6} "
                f"{fmt(c.get('broker_cpu_s'), '.1f'):>6}  {'OK' if c['correct'] else 'FAIL'}"
                + (f" ({c['error']})" if c.get("error") else ""))
    lines += ["", "span: first input record consumed -> last window published (readings/s = N / span); steady: "
              "between 10 % and 90 % of the readings counted; at cap: readings counted / seconds since the "
              "first record, for a contender stopped by its cap or timeout; ratio: to the baseline of the same run"]
    for r in res["runs"]:
        for name in cfg["contenders"]:
            c = r[name]
            v = c.get("verify") or {}
            line = f"run {r['run']} {name}: readings done {fmt(c.get('readings_done'))}"
            if name.startswith("worker"):
                m = c.get("metrics", {})
                line += (f", first window {fmt(c.get('first_window_s'), '.1f')} s, all counted "
                         f"{fmt(c.get('all_counted_s'), '.1f')} s, per process {c.get('readings_per_process')}; "
                         f"late {m.get('late')}, duplicates {m.get('duplicates')}, rejected {m.get('rejected')}, "
                         f"windows published {m.get('windows_published')}")
                if v:
                    line += f"; verify {'OK' if v['correct'] else 'FAIL'} {v['counts']}"
            elif v:
                line += f"; verify {'OK' if v['correct'] else 'FAIL'} {v['counts']}"
            lines.append(line)
            lines += [f"    {orjson.dumps(p).decode()}" for p in v.get("mismatches", [])[:3]]
            if c.get("logs"):
                lines.append(f"    logs kept: {c['logs']}")
    s = res["summary"]
    lines += ["", f"medians over {len(res['runs'])} run(s) (rates and ratios of exact runs only):"]
    for name in cfg["contenders"]:
        m = s[name]
        lines.append(
            f"  {name:<9} {m['correct_runs']}/{m['runs']} exact; {fmt(m['rate'])} readings/s "
            f"(x{fmt(m['ratio']['rate'], '.4f')}), steady {fmt(m['rate_steady'])} "
            f"(x{fmt(m['ratio']['rate_steady'], '.4f')}), at cap {fmt(m['rate_at_cap'])} "
            f"(x{fmt(m['ratio_at_cap'], '.4f')}), peak RSS {fmt(m['peak_rss_mb'], '.0f')} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--readings", type=int, default=200_000,
                   help="readings to send (rounded down to whole 5-minute windows of all sensors)")
    p.add_argument("--encodings", default="A,B",
                   help="comma-separated: A = 1 reading per message, B = 100 per message (each on a fresh broker)")
    p.add_argument("--per-message", type=int, help="readings per footfall batch message (instead of --encodings)")
    p.add_argument("--contenders", default="baseline,faust,worker",
                   help=f"comma-separated, run in this order within each run, from {','.join(CONTENDERS)}")
    p.add_argument("--runs", type=int, default=3, help="runs of all contenders on the same data")
    p.add_argument("--gateways", type=int, default=8,
                   help="sources, one per input partition, each owning every n-th zone (1: one time-ordered log)")
    p.add_argument("--worker-src", help="run the worker from this source tree instead of the repository "
                   "(e.g. a `git archive HEAD` snapshot while the working tree is mid-edit)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds allowed per contender and run (the worker's cap; its rate at the cap is reported)")
    p.add_argument("--faust-cap-s", type=float, default=60.0, help="seconds the Faust reference app may run")
    p.add_argument("--profile", metavar="DIR",
                   help="sample every worker with py-spy (pip install py-spy) into DIR/<run>.txt, collapsed stacks")
    args = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the broker, store and contender processes are stopped by their `finally`
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if min(args.readings, args.runs, args.gateways) < 1:
        p.error("--readings, --runs and --gateways must be positive")
    contenders = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    if not contenders or set(contenders) - set(CONTENDERS):
        p.error(f"--contenders: pick from {', '.join(CONTENDERS)}")
    if args.per_message:
        per_message = [args.per_message]
    else:
        encs = [e.strip().upper() for e in args.encodings.split(",") if e.strip()]
        if not encs or set(encs) - set(ENCODINGS):
            p.error("--encodings: A and/or B")
        per_message = [ENCODINGS[e] for e in encs]
    results = []
    for k in per_message:
        cfg = BenchConfig(readings=args.readings, per_message=k, runs=args.runs, gateways=args.gateways,
                          timeout_s=args.timeout, contenders=contenders, faust_cap_s=args.faust_cap_s,
                          profile_dir=str(Path(args.profile).resolve()) if args.profile else None,
                          worker_src=str(Path(args.worker_src).resolve()) if args.worker_src else None)
        res = run(cfg, RESULTS)
        print(table(res), flush=True)
        print(flush=True)
        results.append(res)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"throughput-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(orjson.dumps({"encodings": results}, option=orjson.OPT_INDENT_2))
    print(f"results: {path}")
    return 0 if all(r["summary"]["all_correct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
