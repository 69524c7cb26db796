"""Command line: serve the web app, create accounts, export datasets, list them."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from axis_adapters.settings import load_settings

from axis_curation.settings import CurationSettings

PASSWORD_ENV = "AXIS_NEW_USER_PASSWORD"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m axis_curation", description="AXIS Loop curation service")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the web app and API (default)")
    serve.add_argument("--host", default=None, help="bind address (default AXIS_CURATION__HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default AXIS_CURATION__PORT, 8085)")
    sub.add_parser(
        "rebuild", help="empty the read model (stop the service first); the next serve replays the topics into it"
    )
    user = sub.add_parser("create-user", help=f"create an account; password from ${PASSWORD_ENV} or stdin")
    user.add_argument("name")
    user.add_argument("--role", choices=["curator", "admin", "scientist", "lims"], default="curator")
    exp = sub.add_parser("export", help="build a dataset version, write it to S3, publish DatasetExported")
    exp.add_argument("--name", required=True)
    exp.add_argument("--purpose", choices=["train", "test"], default="train")
    exp.add_argument("--version", default=None, help="default: next integer for this name")
    exp.add_argument("--config", default=None, help="DatasetConfig overrides: JSON text or @file.json")
    exp.add_argument("--plates", default=None, help="comma-separated plates to take candidates from")
    exp.add_argument("--created-by", default=os.environ.get("USER", "cli"))
    exp.add_argument("--no-publish", action="store_true", help="do not publish DatasetExported")
    sub.add_parser("datasets", help="list recorded dataset versions")
    seed = sub.add_parser("seed-demo", help="dev mode: write a scored demo plate with queued disagreements")
    seed.add_argument("--plate", default="DEMO-1")
    seed.add_argument("--plate-type", choices=["96", "384"], default="96")
    seed.add_argument("--queue-items", type=int, default=6)
    return p


def _read_password() -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise SystemExit("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def _config_arg(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise SystemExit("--config must be a JSON object")
    return value


def _serve(settings: CurationSettings, host: str | None, port: int | None) -> int:
    from axis_curation.serving import serve

    return serve(settings, host, port)


def _rebuild(settings: CurationSettings) -> int:
    from axis_curation.read_model import rebuild_sync

    group = rebuild_sync(settings.postgres)
    print(f"read model emptied; the next `serve` replays every topic from the earliest offset as group {group}")
    return 0


def _create_user(settings: CurationSettings, name: str, role: str) -> int:
    from axis_curation.auth import AuthError
    from axis_curation.context import build_services

    services = build_services(settings, with_broker=False)
    try:
        services.authenticator.create_account(name, _read_password(), role)
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for c in services.closers:
            c.close()
    print(f"created account {name!r} with role {role}")
    return 0


async def _export(settings: CurationSettings, args: argparse.Namespace) -> int:
    """Start an export job and run it here (or wait for the curation service that claimed it first)."""
    from pydantic import ValidationError

    from axis_curation.context import build_services, close_services, open_services
    from axis_curation.curation_repo import DatasetExists
    from axis_curation.export import ExportRequest
    from axis_curation.export_jobs import publish_state, wait_for_job

    services = build_services(settings, with_broker=not args.no_publish)
    await open_services(services, run_jobs=False)
    runner = services.exports
    assert runner is not None
    try:
        plates = [p.strip() for p in args.plates.split(",") if p.strip()] if args.plates else None
        request = ExportRequest(
            name=args.name, purpose=args.purpose, version=args.version, config=_config_arg(args.config), plates=plates
        )
        services.exporter.config_for(request)
        job = runner.jobs.create(
            name=request.name,
            version=request.version,
            purpose=request.purpose,
            request=request.model_dump(mode="json"),
            created_by=args.created_by,
            publish=not args.no_publish,
        )
        print(f"export job {job.id}: {job.name} version {job.version}", file=sys.stderr)
        # run it here, unless a curation service's runner claimed it first: then wait for that one
        done = await asyncio.to_thread(runner.run_one, job.id)
        if done is None:
            done = await asyncio.to_thread(wait_for_job, runner.jobs, job.id)
        if done.state == "succeeded" and publish_state(done) == "pending" and services.publisher is not None:
            await runner.publish(done)
            done = runner.jobs.get(job.id) or done
        report = b""
        if done.result is not None:
            report = services.store.get_bytes(done.result["qc_report_uri"].replace(".json", ".md"))
    except (ValidationError, DatasetExists, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await close_services(services)
    if done.state != "succeeded" or done.result is None:
        print(f"error: export job {done.id} {done.state}: {done.message}", file=sys.stderr)
        return 1
    print(report.decode())
    print(json.dumps(done.result, indent=2, sort_keys=True))
    return 0


def _datasets(settings: CurationSettings) -> int:
    from axis_curation.context import build_services

    services = build_services(settings, with_broker=False)
    try:
        for d in services.repo.datasets():
            print(f"{d.name}\t{d.version}\t{d.purpose}\t{d.manifest_sha256[:12]}\t{d.manifest_uri}")
    finally:
        for c in services.closers:
            c.close()
    return 0


def _seed_demo(settings: CurationSettings, args: argparse.Namespace) -> int:
    if settings.env != "dev":
        print("error: seed-demo writes fake data and runs only with AXIS_ENV=dev", file=sys.stderr)
        return 2
    from axis_adapters.db import connect
    from axis_adapters.objectstore import MinioObjectStore

    from axis_curation.devdata import seed_demo

    with connect(settings.postgres) as conn:
        demo = seed_demo(
            conn,
            MinioObjectStore(settings.s3),
            barcode=args.plate,
            plate_type=args.plate_type,
            queue_items=args.queue_items,
            bucket=settings.s3.images_bucket,
        )
        conn.commit()
    print(f"seeded plate {demo.barcode}: {len(demo.probabilities)} wells, queue items {demo.queue_ids}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m axis_curation``."""
    args = _parser().parse_args(argv)
    settings = load_settings(CurationSettings)
    if args.command in (None, "serve"):
        return _serve(settings, getattr(args, "host", None), getattr(args, "port", None))
    if args.command == "rebuild":
        return _rebuild(settings)
    if args.command == "create-user":
        return _create_user(settings, args.name, args.role)
    if args.command == "export":
        return asyncio.run(_export(settings, args))
    if args.command == "seed-demo":
        return _seed_demo(settings, args)
    return _datasets(settings)
