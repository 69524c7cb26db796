"""Migration files are applied in file-name order, each once."""

from __future__ import annotations

from pathlib import Path

import pytest
from axis_stack.migrate import migration_files, migrations_dir, pending

pytestmark = pytest.mark.unit


def test_files_are_ordered_by_name_and_only_sql(tmp_path: Path) -> None:
    for name in ("0010_b.sql", "0002_a.sql", "0100_c.sql", "README.md", "0003_x.sql.bak"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [p.name for p in migration_files(tmp_path)] == ["0002_a.sql", "0010_b.sql", "0100_c.sql"]


def test_pending_skips_applied_and_keeps_order(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("0001_core.sql", "0002_more.sql", "0003_last.sql")]
    assert [p.name for p in pending({"0001_core.sql", "0003_last.sql"}, files)] == ["0002_more.sql"]
    assert pending({p.name for p in files}, files) == []


def test_default_folder_holds_the_core_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AXIS_MIGRATIONS_DIR", raising=False)
    assert migration_files(migrations_dir())[0].name == "0001_core.sql"


def test_env_override_and_missing_folder_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AXIS_MIGRATIONS_DIR", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="AXIS_MIGRATIONS_DIR"):
        migration_files(migrations_dir())
