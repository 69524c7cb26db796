"""Migration files are applied in file-name order, each once."""

from __future__ import annotations

from pathlib import Path

import pytest
from axis_stack.migrate import migration_files, pending
from axis_stack.schemas import SCHEMAS

pytestmark = pytest.mark.unit


def test_files_are_ordered_by_name_and_only_sql(tmp_path: Path) -> None:
    for name in ("0010_b.sql", "0002_a.sql", "0100_c.sql", "README.md", "0003_x.sql.bak"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [p.name for p in migration_files(tmp_path)] == ["0002_a.sql", "0010_b.sql", "0100_c.sql"]


def test_pending_skips_applied_and_keeps_order(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("0001_core.sql", "0002_more.sql", "0003_last.sql")]
    assert [p.name for p in pending({"0001_core.sql", "0003_last.sql"}, files)] == ["0002_more.sql"]
    assert pending({p.name for p in files}, files) == []


def test_every_service_has_its_migrations_after_the_common_tables() -> None:
    for name, schema in SCHEMAS.items():
        files = [p.name for p in schema.migration_files()]
        assert files[0] == "0000_common.sql", name  # processed events, dead-letter claims: in every schema
        assert files == sorted(files) and len(files) == len(set(files)), name
    assert "0001_inference.sql" in [p.name for p in SCHEMAS["inference"].migration_files()]
    assert "0002_read_model.sql" in [p.name for p in SCHEMAS["curation"].migration_files()]


def test_missing_folder_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        migration_files(tmp_path / "nope")
