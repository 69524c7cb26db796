"""Security checks that need no servers: parameterised SQL only, and no start with default secrets in production."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "libs", ROOT / "services", ROOT / "infra"]
SQL_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "copy"}


def _is_literal(node: ast.expr, consts: set[str]) -> bool:
    """A string literal, a name bound to one, or literals joined with +: text fixed in the source."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return node.id in consts
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_literal(node.left, consts) and _is_literal(node.right, consts)
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(v, ast.Constant) or (isinstance(v, ast.FormattedValue) and _is_literal(v.value, consts))
            for v in node.values
        )
    return False


def _dynamic_sql(arg: ast.expr, consts: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Why a SQL argument is built from run-time values (f-string, .format, % or +), else None.

    Interpolating names bound to fixed source text (column lists, a constant WHERE clause) is allowed.
    """
    if isinstance(arg, ast.JoinedStr) and not _is_literal(arg, set(consts)):
        return "f-string"
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format":
        if isinstance(arg.func.value, ast.Constant | ast.JoinedStr):
            return "str.format"
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod | ast.Add):
        if any(isinstance(side, ast.Constant) and isinstance(side.value, str) for side in (arg.left, arg.right)):
            return "% or + on a string"
    return None


def sql_findings() -> list[str]:
    """file:line of every execute-like call whose SQL text is assembled from values."""
    found = []
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            assigned: dict[str, ast.expr] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    assigned[node.targets[0].id] = node.value
            consts: set[str] = set()
            for _ in range(3):  # names built from other constant names
                consts |= {name for name, value in assigned.items() if _is_literal(value, consts)}
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr not in SQL_CALLS or not node.args:
                    continue
                arg = node.args[0]
                if isinstance(arg, ast.Name) and arg.id in assigned:  # sql = f"..."; execute(sql)
                    arg = assigned[arg.id]
                why = _dynamic_sql(arg, consts)
                if why:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {why}")
    return found


def test_the_sql_checker_catches_interpolation() -> None:
    bad = ast.parse('conn.execute(f"SELECT * FROM t WHERE id = {x}")').body[0].value  # type: ignore[attr-defined]
    assert _dynamic_sql(bad.args[0]) == "f-string"
    good = ast.parse('conn.execute("SELECT * FROM t WHERE id = %s", (x,))').body[0].value  # type: ignore[attr-defined]
    assert _dynamic_sql(good.args[0]) is None
    cols = ast.parse('conn.execute(f"SELECT {COLS} FROM t WHERE id = %s", (x,))').body[0].value  # type: ignore[attr-defined]
    assert _dynamic_sql(cols.args[0], {"COLS"}) is None and _dynamic_sql(cols.args[0]) == "f-string"


def test_sql_is_only_parameterised() -> None:
    findings = sql_findings()
    assert not findings, "SQL built from values (use %s parameters or psycopg.sql):\n" + "\n".join(findings)


REAL = {"AXIS_POSTGRES__PASSWORD": "pg-secret-0123456789", "AXIS_S3__SECRET_KEY": "s3-secret-0123456789"}
ENTRY_POINTS = [
    (["-m", "axis_curation", "serve"], "AXIS_POSTGRES__PASSWORD", {}),
    (["-m", "axis_curation", "serve"], "AXIS_S3__SECRET_KEY", {"AXIS_POSTGRES__PASSWORD": "pg-secret-0123456789"}),
    (["-m", "axis_discrepancy.lims_gateway"], "AXIS_POSTGRES__PASSWORD", {}),
    (["-m", "axis_discrepancy.lims_gateway"], "AXIS_LIMS__API_KEY", REAL),
    (["-m", "axis_discrepancy"], "AXIS_LIMS__API_KEY", REAL),
    (["-m", "axis_inference"], "AXIS_POSTGRES__PASSWORD", {}),
    (["-m", "axis_simulators", "robot"], "AXIS_S3__SECRET_KEY", {"AXIS_POSTGRES__PASSWORD": "pg-secret-0123456789"}),
]


@pytest.mark.parametrize(
    ("argv", "setting", "extra"), ENTRY_POINTS, ids=[f"{' '.join(a[1:])}-{s}" for a, s, _ in ENTRY_POINTS]
)
def test_production_refuses_default_passwords_naming_the_setting(
    argv: list[str], setting: str, extra: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AXIS_", "ENV"))}
    env.update({"ENV": "production", "AXIS_ENV_FILE": str(tmp_path / "none.env"), **extra})
    done = subprocess.run(
        [sys.executable, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0, f"{argv} started in production with default secrets:\n{done.stdout[-500:]}"
    assert setting in done.stderr, done.stderr[-1500:]
    assert "default password" in done.stderr


def test_a_real_secret_passes_the_production_check() -> None:
    from axis_adapters.settings import ServiceSettings
    from pydantic import ValidationError

    secrets = {"AXIS_POSTGRES__PASSWORD": "pg-" + "s" * 20, "AXIS_S3__SECRET_KEY": "s3-" + "t" * 20}
    with pytest.raises(ValidationError, match="AXIS_POSTGRES__PASSWORD"):
        ServiceSettings(_env_file=None, env="production")  # type: ignore[call-arg]
    ok = ServiceSettings(
        _env_file=None,  # type: ignore[call-arg]
        env="production",
        postgres={"password": secrets["AXIS_POSTGRES__PASSWORD"]},
        s3={"secret_key": secrets["AXIS_S3__SECRET_KEY"]},
    )
    assert ok.env == "production"
