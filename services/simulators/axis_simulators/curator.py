"""Curator simulator: resolves queued disagreements from a ground-truth mapping, through the curation HTTP API.

It logs in like an API client (POST /v1/tokens), walks GET /v1/queue, reads each item and posts the true label
(crystal/other) or, for a configurable share of items, ``uncertain``. Truth is looked up by inspection id, then
by experiment key ``plate:well:drop``; items with no known truth are labelled ``uncertain``.

    python -m axis_simulators.curator --url http://127.0.0.1:8085 --user sim-1 --truth truth.json \
        --uncertain 0.1 --seed 1        # password from $AXIS_CURATOR_PASSWORD
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PASSWORD_ENV = "AXIS_CURATOR_PASSWORD"


@dataclass
class CuratorRun:
    """What one simulated curator did."""

    labelled: dict[str, int] = field(default_factory=dict)
    unknown_truth: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Items labelled."""
        return sum(self.labelled.values())


def truth_for(item: Mapping[str, Any], truth: Mapping[str, str]) -> str | None:
    """The true label of a queued item, by inspection id or ``plate:well:drop``."""
    found = truth.get(str(item["inspection_id"]))
    if found is None:
        found = truth.get(f"{item['plate_barcode']}:{item['well']}:{item['drop']}")
    return found if found in ("crystal", "other") else None


def simulate_curator(
    client: httpx.Client,
    truth: Mapping[str, str],
    *,
    uncertain_share: float = 0.0,
    seed: int = 0,
    max_items: int | None = None,
) -> CuratorRun:
    """Label every item in the caller's queue (``client`` carries the base URL and bearer token)."""
    if not 0.0 <= uncertain_share <= 1.0:
        raise ValueError("uncertain_share must be between 0 and 1")
    rng = random.Random(seed)
    run = CuratorRun()
    skipped: set[int] = set()
    while max_items is None or run.total < max_items:
        page = client.get("/v1/queue", params={"limit": 50}).raise_for_status().json()
        items = [it for it in page["items"] if it["id"] not in skipped]
        if not items:
            break
        for item in items:
            if max_items is not None and run.total >= max_items:
                break
            label = truth_for(item, truth)
            if label is None:
                run.unknown_truth += 1
                label = "uncertain"
            elif rng.random() < uncertain_share:
                label = "uncertain"
            resp = client.post(f"/v1/items/{item['id']}/labels", json={"label": label, "comment": "simulated"})
            if resp.status_code == 201:
                run.labelled[label] = run.labelled.get(label, 0) + 1
            else:  # e.g. 409: superseded meanwhile; never retry the same item forever
                skipped.add(item["id"])
                run.errors.append(f"item {item['id']}: HTTP {resp.status_code} {resp.text[:200]}")
    return run


def login(base_url: str, username: str, password: str, *, timeout: float = 30.0) -> httpx.Client:
    """An httpx client with a bearer token from POST /v1/tokens."""
    resp = httpx.post(
        base_url.rstrip("/") + "/v1/tokens", json={"username": username, "password": password}, timeout=timeout
    )
    if resp.status_code != 200:
        raise PermissionError(f"login as {username!r} failed: HTTP {resp.status_code}")
    token = resp.json()["access_token"]
    return httpx.Client(base_url=base_url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(prog="python -m axis_simulators.curator", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8085")
    p.add_argument("--user", required=True)
    p.add_argument("--truth", required=True, type=Path, help='JSON {"inspection id" or "plate:well:drop": label}')
    p.add_argument("--uncertain", type=float, default=0.0, help="share of items labelled uncertain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-items", type=int, default=None)
    args = p.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        print(f"error: set ${PASSWORD_ENV}", file=sys.stderr)
        return 2
    truth = json.loads(args.truth.read_text())
    with login(args.url, args.user, password) as client:
        run = simulate_curator(client, truth, uncertain_share=args.uncertain, seed=args.seed, max_items=args.max_items)
    print(json.dumps({"labelled": run.labelled, "unknown_truth": run.unknown_truth, "errors": run.errors}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
