"""Each service owns one PostgreSQL schema and role: PostgreSQL itself refuses any other service's table."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest
from axis_stack import StackInfo
from axis_stack.schemas import SCHEMAS, role_conninfo

pytestmark = pytest.mark.integration

# one table each service owns (created by its own migrations)
OWN_TABLE = {
    "inference": "image_scores",
    "discrepancy": "comparisons",
    "curation": "curator_labels",
    "trainer": "test_sets",
    "promote": "model_promotions",
    "ingest": "ingest_files",
}


def _conn(stack: StackInfo, service: str) -> psycopg.Connection[Any]:
    password = stack.env[f"AXIS_ROLES__{service.upper()}"]
    return psycopg.connect(role_conninfo(stack.postgres_conninfo(), service, password), autocommit=True)


def test_every_service_has_a_schema_role_and_table() -> None:
    assert set(OWN_TABLE) == set(SCHEMAS)


@pytest.mark.parametrize("service", sorted(SCHEMAS))
def test_a_role_uses_its_own_schema(stack: StackInfo, service: str) -> None:
    with _conn(stack, service) as conn:
        user, path = conn.execute("SELECT current_user, current_setting('search_path')").fetchone()  # type: ignore[misc]
        assert (user, path) == (f"axis_{service}", service)
        conn.execute(f"SELECT count(*) FROM {OWN_TABLE[service]}")  # noqa: S608 - fixed names
        # nothing of its own lands in public, and it may not create there
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.sneaky (x int)")


@pytest.mark.parametrize(("reader", "owner"), list(itertools.permutations(sorted(SCHEMAS), 2)))
def test_another_services_tables_are_refused(stack: StackInfo, reader: str, owner: str) -> None:
    table = f"{owner}.{OWN_TABLE[owner]}"
    with _conn(stack, reader) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"permission denied for schema {owner}"):
            conn.execute(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 - fixed names
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names


def test_each_service_connects_as_its_own_role(stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings every service builds from the stack's env file carry its own role, nothing else."""
    from axis_adapters.db import connect
    from axis_adapters.settings import ServiceSettings, load_settings
    from axis_cli.promote_watch import PromoteWatchSettings
    from axis_cli.promotion_log import PromoteSettings
    from axis_curation.settings import CurationSettings
    from axis_discrepancy.settings import DiscrepancySettings
    from axis_inference.settings import InferenceSettings
    from axis_ingest.settings import IngestSettings
    from axis_trainer.settings import TrainerSettings

    monkeypatch.setenv("AXIS_ENV_FILE", str(stack.env_file))
    classes: list[type[ServiceSettings]] = [
        InferenceSettings, DiscrepancySettings, CurationSettings, TrainerSettings, PromoteSettings,
        PromoteWatchSettings, IngestSettings,
    ]  # fmt: skip
    seen = {}
    for cls in classes:
        settings = load_settings(cls)
        with connect(settings.postgres) as conn:
            row = conn.execute("SELECT current_user").fetchone()
        seen[cls.__name__] = row[0] if row else None
    assert seen == {c.__name__: f"axis_{c.service_schema}" for c in classes}
    assert len({c.service_schema for c in classes}) == len(SCHEMAS)  # every schema has its service
