"""The `drukte` command: up, worker, api, simulate, replay, topics plan|apply, registry check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from drukte.errors import DrukteError
from drukte.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    """The environment, read once, with the command line's --registry and --port on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "registry", None):
        overrides["registry"] = Path(args.registry)
    if getattr(args, "port", None):
        overrides["port"] = args.port
    return load_settings(**overrides)


def cmd_registry_check(args: argparse.Namespace, settings: Settings) -> int:
    from drukte.registry_check import check_file

    return check_file(Path(args.file), sys.stdout)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from agents.main import run_worker
    from drukte.registry_check import load_registry

    run_worker(settings, load_registry(settings.registry))
    return 0


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from api.server import serve
    from drukte.registry_check import load_registry

    serve(settings, load_registry(settings.registry))
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from drukte.registry_check import load_registry
    from drukte.simulator import run_simulator

    registry = load_registry(settings.registry)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_simulator(settings, registry, city=args.city, speed=args.speed, days=args.days,
                                  history_days=args.history_days, history_pace_s=args.history_pace_s))
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from drukte.registry_check import load_registry
    from drukte.replay import format_report, parse_speed, run_replay

    registry = load_registry(settings.registry)
    speed = parse_speed(args.speed)
    sensor_map = Path(args.sensor_map) if args.sensor_map else None
    try:
        report = asyncio.run(run_replay(settings, registry, Path(args.file), fmt=args.format,
                                        sensor_map=sensor_map, speed=speed, city=args.city))
    except KeyboardInterrupt:
        print("drukte: replay interrupted; batches already sent stay (a new replay resends them, counted once)",
              file=sys.stderr)
        return 130
    print(format_report(report))
    return 0 if report.sent else 1


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from drukte.rebuild import main as rebuild

    return rebuild(settings)


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from drukte.topics_cmd import run

    return run(args.topics_command, settings, sys.stdout)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from drukte import stack

    return stack.up(settings, simulator=not args.no_simulator, history_days=args.history_days)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="drukte", description="Live, privacy-first busyness for shopping streets.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start broker, store, worker, API and simulator (embedded unless configured)")
    up.add_argument("--no-simulator", action="store_true", help="do not start the simulator")
    up.add_argument("--port", type=int, help="API port (default 8080 or DRUKTE_PORT)")
    up.add_argument("--history-days", type=float, default=56.0,
                    help="days of simulated history: this weekday's 8 weeks at full speed first, so today's "
                         "usual band, index, score and forecast exist within minutes, then the other days "
                         "paced (default 56: the 8 weeks of DRUKTE_BASELINE_WEEKS)")
    up.add_argument("--registry", help="registry YAML (default DRUKTE_REGISTRY or the shipped Flanders file)")
    up.set_defaults(func=cmd_up)

    worker = sub.add_parser("worker", help="run a stream worker (start more to scale out)")
    worker.add_argument("--registry", help="registry YAML")
    worker.set_defaults(func=cmd_worker)

    api = sub.add_parser("api", help="run the HTTP API (reads Redis only)")
    api.add_argument("--port", type=int, help="port (default 8080 or DRUKTE_PORT)")
    api.add_argument("--registry", help="registry YAML")
    api.set_defaults(func=cmd_api)

    sim = sub.add_parser("simulate", help="feed synthetic counters, payments and (where scanners are "
                         "registered) device detections for the registry's cities")
    sim.add_argument("--city", help="one city id (default: all)")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    sim.add_argument("--days", type=float, default=0.0, help="days of history to send first (default 0)")
    sim.add_argument("--history-days", type=float, default=0.0,
                     help="days of quarter-hour history sent first, in parallel with live (default 0)")
    sim.add_argument("--history-pace-s", type=float, default=None,
                     help="real seconds to wait after each day of history but the urgent ones (this weekday, "
                          "sent first at full speed); 0: all at full speed, live waits behind the backlog "
                          "(default: each day once the worker group has read the one before)")
    sim.add_argument("--registry", help="registry YAML")
    sim.set_defaults(func=cmd_simulate)

    rep = sub.add_parser("replay", help="replay historical counts from a CSV file into footfall.counts.v1")
    rep.add_argument("file", help="CSV of hourly or finer counts (wide, long or inout; `,` or `;` separated)")
    rep.add_argument("--format", choices=("auto", "wide", "long", "inout"), default="auto",
                     help="layout of the file (default auto: detected from the header and first rows)")
    rep.add_argument("--registry", help="registry YAML")
    rep.add_argument("--sensor-map", help="CSV name,sensor_id mapping the file's sensor names to registry ids "
                                          "(default: the slug of the name)")
    rep.add_argument("--speed", default="max",
                     help="max (default: as fast as possible) or simulated seconds per real second")
    rep.add_argument("--city", help="only replay this city's sensors (default: every sensor in the file)")
    rep.set_defaults(func=cmd_replay)

    rb = sub.add_parser("rebuild-baselines",
                        help="refill the day histories behind the usual bands from busyness.zone.v1 (after the "
                             "worker's state was lost); run it with the worker running")
    rb.set_defaults(func=cmd_rebuild)

    top = sub.add_parser("topics", help="Kafka topics with partitions, replication and retention (P4)")
    topsub = top.add_subparsers(dest="topics_command", required=True, metavar="SUBCOMMAND")
    plan = topsub.add_parser("plan", help="print the topics `apply` would create (needs no Kafka)")
    plan.set_defaults(func=cmd_topics)
    apply = topsub.add_parser("apply", help="create missing topics, set retention of existing ones; safe to repeat")
    apply.set_defaults(func=cmd_topics)

    reg = sub.add_parser("registry", help="registry tools")
    regsub = reg.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")
    check = regsub.add_parser("check", help="validate a registry file, with line numbers")
    check.add_argument("file")
    check.set_defaults(func=cmd_registry_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command != "worker":  # the worker's logging is Faust's
            logging.basicConfig(level=settings.log_level.upper(),
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        code: int = args.func(args, settings)
    except DrukteError as exc:
        print(f"drukte: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
