"""Demo stages 1, 2 and 4 and the end: the stack, the base model, the service processes; stopping them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from axis_cli.demo_context import DemoClock, DemoContext, DemoOptions, need
from axis_cli.demo_db import LoopDb
from axis_cli.demo_procs import ServiceSet, free_port, wait_until

if TYPE_CHECKING:
    from axis_stack import StackInfo


def start_stack(opts: DemoOptions, clock: DemoClock, *, stack: StackInfo | None = None) -> DemoContext:
    """Stage 1: axis_stack.up on the data dir (or a running ``stack``, used and never stopped) -> the context."""
    from axis_stack import status, up

    if stack is not None:  # e.g. the tests' session stack
        ctx = DemoContext(opts, clock, stack, LoopDb(stack.postgres_conninfo()), stack_started=False)
        ctx.say(f"using the running stack of {stack.data_dir}")
        return ctx
    try:
        already = all(s.healthy for s in status(opts.data_dir).values())
    except Exception:
        already = False
    info = up(opts.data_dir)
    ctx = DemoContext(opts, clock, info, LoopDb(info.postgres_conninfo()), stack_started=not already)
    ctx.say(f"stack {'started' if ctx.stack_started else 'already up'}; settings in {info.env_file}")
    return ctx


def prepare_base(ctx: DemoContext) -> None:
    """Stage 2: the local DINOv2 directory every process loads."""
    from axis_cli.demo_data import ensure_base_model

    ctx.base_path = ensure_base_model(ctx.opts.base_model, ctx.opts.data_dir / "models")
    ctx.say(f"base weights in {ctx.base_path}")


def start_services(ctx: DemoContext) -> None:
    """Stage 4: every service as a subprocess with logs in <data-dir>/logs/."""
    from axis_cli.demo_http import ADMIN_USER, CurationClient, create_account, ensure_account

    base_path = need(ctx.base_path, "the base model (stage 2)")
    facility = need(ctx.facility, "the facility plan")
    data = ctx.opts.data_dir
    threads = str(ctx.opts.torch_threads)
    ctx.services = services = ServiceSet(data, {**ctx.env(), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})

    def start(name: str, argv: list[str], env: dict[str, str]) -> None:  # ctx.service_env: a caller's additions
        services.start(name, argv, {**env, **ctx.service_env.get(name, {})})

    ctx.ports = {"inference": free_port(), "curation": free_port(), "discrepancy": free_port()}
    common = {"AXIS_MODEL__BASE_PATH": str(base_path)}
    start(
        "inference",
        ["-m", "axis_inference"],
        {
            **common,
            "AXIS_INFERENCE__HTTP_PORT": str(ctx.ports["inference"]),
            "AXIS_INFERENCE__POLL_SECONDS": "2",
            "AXIS_INFERENCE__VARIANT": "fp32",
            "AXIS_INFERENCE__CACHE_DIR": str(data / "cache" / "inference"),
        },
    )
    start("discrepancy", ["-m", "axis_discrepancy"], {"AXIS_DISCREPANCY__HTTP_PORT": str(ctx.ports["discrepancy"])})
    curation_env = {"AXIS_CURATION__BCRYPT_ROUNDS": "4", "AXIS_CURATION__CONSENSUS_MIN": "2"}
    start("curation", ["-m", "axis_curation", "serve", "--port", str(ctx.ports["curation"])], curation_env)
    ctx.curation_url = f"http://127.0.0.1:{ctx.ports['curation']}"
    probe = CurationClient(ctx.curation_url)
    wait_until(probe.healthy, timeout=120, what="the curation service", services=services)
    probe.close()
    admin_user, admin_password = ensure_account(
        ctx.accounts_file,
        ADMIN_USER,
        base_url=ctx.curation_url,
        create=lambda user, pw: create_account({**ctx.env(), **curation_env}, user, "admin", pw),
        suffix=ctx.tag,
    )
    ctx.admin = CurationClient.login(ctx.curation_url, admin_user, admin_password)
    o = ctx.opts
    start(
        "lims-simulator",
        ["-m", "axis_simulators.lims"],
        {
            "AXIS_LIMS_SIM__TRUTH_URI": facility.lims_truth_uri,
            "AXIS_LIMS_SIM__ERROR_RATE": str(o.lims_error_rate),
            "AXIS_LIMS_SIM__SEED": str(o.seed),
        },
    )
    start(
        "trainer",
        ["-m", "axis_trainer"],
        {
            **common,
            "AXIS_TRAINER__MAX_STEPS": str(o.steps),
            "AXIS_TRAINER__EPOCHS": str(o.epochs),
            "AXIS_TRAINER__SEED": str(o.seed),
            "AXIS_TRAINER__WORK_DIR": str(o.data_dir / "cache" / "trainer"),
            "AXIS_TRAINER__TORCH_THREADS": str(o.torch_threads),
            "AXIS_TRAINER__TARGET_RECALL": str(o.target_recall),
        },
    )
    ctx.say(f"services up: {', '.join(services.procs)}; logs in {services.log_dir}")


def leave_running(ctx: DemoContext) -> None:
    """--keep-running: say where everything is and how to stop it."""
    print(f"\nleft running (stop with: python -m axis_cli demo --stop --data-dir {ctx.opts.data_dir})", flush=True)
    if ctx.services is not None:
        for name, proc in ctx.services.procs.items():
            print(f"  {name:<12} pid {proc.popen.pid}  log {proc.log_path}", flush=True)


def shutdown(ctx: DemoContext) -> None:
    """Stop the services, then the stack when this run started it."""
    if ctx.services is not None:
        ctx.services.stop_all()
        ctx.services = None
    if ctx.admin is not None:
        ctx.admin.close()
        ctx.admin = None
    if ctx.stack_started:
        from axis_stack import down

        down(ctx.opts.data_dir, quiet=True)
        ctx.stack_started = False
