"""Static checks of the service boundaries: no service imports another, no service's SQL names another's table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from axis_stack.schemas import SCHEMAS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = {  # schema -> the code that runs as that service (its package holds its repositories)
    "inference": ["services/inference/axis_inference"],
    "discrepancy": ["services/discrepancy/axis_discrepancy"],
    "curation": ["services/curation/axis_curation"],
    "trainer": ["services/trainer/axis_trainer"],
    "ingest": ["services/ingest/axis_ingest"],
    "promote": [
        "services/cli/axis_cli/promote.py",
        "services/cli/axis_cli/promote_watch.py",
        "services/cli/axis_cli/promotion_log.py",
        "services/cli/axis_cli/register.py",
    ],
}
# The rest of axis_cli (demo, audit, API docs) and axis_simulators are operator and test tools: they drive the
# whole system from outside (HTTP, Kafka) or read every schema as the database admin, like `psql` would.
SERVICE_IMPORTS = {"axis_inference", "axis_discrepancy", "axis_curation", "axis_trainer", "axis_ingest"}
SQL_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_][a-z0-9_]*)\b")
COMMON = {"processed_events", "dead_letter_claims", "schema_migrations"}
NOT_TABLES = {"unnest", "jsonb_each", "jsonb_array_elements", "generate_series", "lateral"}


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = ROOT / p
        out.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return [f for f in out if f.exists()]


def _tables_of(schema: str) -> set[str]:
    names: set[str] = set()
    for f in SCHEMAS[schema].migration_files():
        names |= set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", f.read_text()))
    return names


def _strings(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _own_package(paths: list[str]) -> str | None:
    return next((Path(p).name for p in paths if Path(p).name in SERVICE_IMPORTS), None)


def test_every_schema_has_its_code() -> None:
    assert set(SERVICE_PACKAGES) == set(SCHEMAS)
    for paths in SERVICE_PACKAGES.values():
        assert _files(paths), paths


@pytest.mark.parametrize("schema", sorted(SERVICE_PACKAGES))
def test_no_service_imports_another(schema: str) -> None:
    own = _own_package(SERVICE_PACKAGES[schema])
    bad = []
    for f in _files(SERVICE_PACKAGES[schema]):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in SERVICE_IMPORTS and top != own:
                    bad.append(f"{f.relative_to(ROOT)}: imports {name}")
    assert bad == []


@pytest.mark.parametrize("schema", sorted(SERVICE_PACKAGES))
def test_no_service_sql_names_another_services_table(schema: str) -> None:
    own = _tables_of(schema) | COMMON
    others = {t for s in SCHEMAS if s != schema for t in _tables_of(s)} - own
    assert others, "the other schemas' tables were found"
    bad = []
    for f in _files(SERVICE_PACKAGES[schema]):
        for text in _strings(ast.parse(f.read_text())):
            for table in SQL_TABLE.findall(text):
                if table in others and table not in NOT_TABLES:
                    bad.append(f"{f.relative_to(ROOT)}: {table!r} in {text.strip()[:80]!r}")
    assert bad == []


def test_libs_hold_no_service_private_sql() -> None:
    """libs/ holds what two or more services share: its only SQL is the consumers' common tables."""
    bad = []
    for f in sorted((ROOT / "libs").rglob("*.py")):
        for text in _strings(ast.parse(f.read_text())):
            bad += [f"{f.relative_to(ROOT)}: {t}" for t in SQL_TABLE.findall(text) if t in _all_tables() - COMMON]
    assert bad == []


def _all_tables() -> set[str]:
    return {t for s in SCHEMAS for t in _tables_of(s)}


def test_the_check_finds_a_foreign_table() -> None:
    """The SQL scan is not vacuous: a query of the inference service's table is seen from curation's side."""
    others = {t for s in SCHEMAS if s != "trainer" for t in _tables_of(s)} - _tables_of("trainer")
    found = SQL_TABLE.findall("SELECT * FROM image_scores s JOIN comparisons c ON true")
    assert set(found) <= others and found == ["image_scores", "comparisons"]
