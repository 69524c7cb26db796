"""The demo prints the logins of its pages: an admin, its curators and a read-only scientist that can log in."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration


def test_the_demo_report_lists_logins_that_work_including_a_scientist(stack: StackInfo, tmp_path: Path) -> None:
    from axis_cli.demo_http import ADMIN_USER, CurationClient
    from axis_cli.demo_report import account_lines
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.server import BackgroundServer
    from axis_curation.settings import CurationOptions, CurationSettings

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings, with_broker=False)
    tag = uuid.uuid4().hex[:6]
    admin, password = f"{ADMIN_USER}-{tag}", "demo-admin-password"
    services.authenticator.create_account(admin, password, "admin")
    accounts = tmp_path / "demo" / "accounts.json"
    accounts.parent.mkdir()
    accounts.write_text(json.dumps({ADMIN_USER: [admin, password]}))
    with BackgroundServer(create_app(services)) as srv:
        ctx = SimpleNamespace(
            admin=CurationClient.login(srv.url, admin, password), accounts_file=accounts, curation_url=srv.url, tag=tag
        )
        lines = account_lines(ctx)  # type: ignore[arg-type]
        print("\n".join(lines))
        known = json.loads(accounts.read_text())
        scientist, scientist_pw = known["demo-scientist"]
        assert f"    {admin} / {password} / admin" in lines
        assert f"    {scientist} / {scientist_pw} / scientist (read-only)" in lines
        assert str(accounts) in lines[0]
        with httpx.Client(base_url=srv.url) as c:
            assert c.post("/v1/login", json={"username": scientist, "password": scientist_pw}).status_code == 200
            assert c.get("/v1/me").json()["role"] == "scientist"
            assert c.get("/v1/plates").status_code == 200
            refused = c.get("/curate")
            assert refused.status_code == 403 and "needs the curator role" in refused.text
        again = account_lines(ctx)  # type: ignore[arg-type]
        assert again == lines, "a second report reuses the remembered scientist"
