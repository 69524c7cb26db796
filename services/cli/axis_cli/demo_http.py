"""The demo's admin client of the curation HTTP API: account, token, dataset exports."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

ADMIN_USER = "demo-admin"


def create_account(env: Mapping[str, str], username: str, role: str, password: str) -> None:
    """Create an account through ``python -m axis_curation create-user`` (a no-op error when it exists)."""
    full = {**os.environ, **env, "AXIS_NEW_USER_PASSWORD": password}
    out = subprocess.run(
        [sys.executable, "-m", "axis_curation", "create-user", username, "--role", role],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0 and "exists" not in (out.stderr + out.stdout):
        raise RuntimeError(f"creating account {username!r} failed: {out.stderr.strip() or out.stdout.strip()}")


class CurationClient:
    """Bearer-token client of the curation service."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> CurationClient:
        """A client holding an API token of ``username``."""
        with httpx.Client(base_url=base_url, timeout=60.0) as http:
            r = http.post("/v1/tokens", json={"username": username, "password": password})
            if r.status_code != 200:
                raise RuntimeError(f"login of {username!r} at {base_url} failed: {r.status_code} {r.text[:300]}")
            return cls(base_url, r.json()["access_token"])

    def healthy(self) -> bool:
        """True when the service answers HTTP."""
        try:
            return self.http.get("/v1/me").status_code in (200, 401)
        except httpx.HTTPError:
            return False

    def export(
        self, name: str, *, purpose: str, plates: Sequence[str] | None = None, config: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST /v1/datasets as admin and wait for the export job; returns the recorded dataset (with
        removed_by_stage, published)."""
        from axis_curation.export_jobs import export_and_wait

        body: dict[str, Any] = {"name": name, "purpose": purpose, "config": dict(config or {})}
        if plates is not None:
            body["plates"] = list(plates)
        return export_and_wait(self.http, body)

    def create_account(self, username: str, password: str, role: str) -> None:
        """POST /v1/accounts as admin (409: it exists already, fine)."""
        r = self.http.post("/v1/accounts", json={"username": username, "password": password, "role": role})
        if r.status_code not in (201, 409):
            raise RuntimeError(f"creating account {username!r} failed: {r.status_code} {r.text[:300]}")

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()


def new_password() -> str:
    """A random password for the demo's accounts."""
    return secrets.token_urlsafe(18)


def can_login(base_url: str, username: str, password: str) -> bool:
    """True when the curation service issues a token for these credentials."""
    r = httpx.post(f"{base_url}/v1/tokens", json={"username": username, "password": password}, timeout=60.0)
    return r.status_code == 200


def ensure_account(
    path: Path,
    base_name: str,
    *,
    base_url: str,
    create: Callable[[str, str], None],
    suffix: str,
) -> tuple[str, str]:
    """(username, password) of a demo account that can log in; remembered (owner-only file) across demo runs.

    When ``base_name`` exists with a password the demo does not know (made by someone else), a fresh
    ``<base_name>-<suffix>`` account is used instead.
    """
    known: dict[str, list[str]] = json.loads(path.read_text()) if path.exists() else {}
    entry = known.get(base_name)
    username, password = entry if isinstance(entry, list) and len(entry) == 2 else (base_name, new_password())
    create(username, password)
    if not can_login(base_url, username, password):
        username, password = f"{base_name}-{suffix}", new_password()
        create(username, password)
        if not can_login(base_url, username, password):
            raise RuntimeError(f"cannot log in as the demo account {username!r} just created")
    known[base_name] = [username, password]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(known, indent=1) + "\n")
    return username, password
