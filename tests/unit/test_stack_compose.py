"""compose-check: the real docker-compose.yml passes, broken copies fail with a message saying why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from axis_stack.compose import compose_check

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    return tmp_path / "docker-compose.yml"


def test_the_repository_compose_file_is_valid() -> None:
    ok, message = compose_check(ROOT / "docker-compose.yml")
    assert ok, message


def test_unknown_key_is_rejected(copy: Path) -> None:
    copy.write_text(copy.read_text().replace("\n  postgres:\n", "\n  postgres:\n    bogus_key: 1\n", 1))
    ok, message = compose_check(copy)
    assert not ok
    assert "bogus_key" in message


def test_dependency_on_a_missing_service_is_rejected(copy: Path) -> None:
    text = copy.read_text()
    copy.write_text(text.replace("  create-topics:\n    condition", "  create-topic:\n    condition", 1))
    ok, message = compose_check(copy)
    assert not ok
    assert "create-topic" in message


def test_a_secret_missing_from_the_env_file_is_reported(copy: Path) -> None:
    env = copy.with_name(".env.example")
    lines = env.read_text().splitlines()
    env.write_text("\n".join(line for line in lines if not line.startswith("POSTGRES_PASSWORD")))
    ok, message = compose_check(copy)
    assert not ok
    assert "POSTGRES_PASSWORD" in message


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if line and line[0] != "#"
    )
    secrets = [v for k, v in example.items() if "PASSWORD" in k or "SECRET" in k]
    assert secrets and not any(s in text for s in secrets)
    assert "${POSTGRES_PASSWORD:?" in text and "${S3_SECRET_KEY:?" in text


def test_missing_file_fails() -> None:
    ok, message = compose_check(Path("/nonexistent/docker-compose.yml"))
    assert not ok and "no such file" in message
