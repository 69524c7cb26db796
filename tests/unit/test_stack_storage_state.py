"""A new data dir gets the durable S3 server and the broker log in it; the choice is kept with the data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from axis_stack.components import DEFAULT_KAFKA_STORAGE, S3_SERVER_ENV, StackState, start_s3
from axis_stack.state import STATE_FILE, load_state, new_state, save_state

pytestmark = pytest.mark.unit


def test_a_new_data_dir_is_durable_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(S3_SERVER_ENV, raising=False)
    state = new_state(tmp_path, None, DEFAULT_KAFKA_STORAGE)
    assert (state.s3_server, state.kafka_storage) == ("localbucket", "s3")
    assert state.s3_root == tmp_path / "s3"


def test_the_s3_server_is_kept_with_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(S3_SERVER_ENV, "moto")
    save_state(new_state(tmp_path, None, "memory"))
    monkeypatch.delenv(S3_SERVER_ENV)
    again = load_state(tmp_path)
    assert again is not None and again.s3_server == "moto"


def test_a_data_dir_from_before_gets_localbucket(tmp_path: Path) -> None:
    save_state(new_state(tmp_path, None, "memory"))
    raw = json.loads((tmp_path / STATE_FILE).read_text())
    del raw["s3_server"]
    (tmp_path / STATE_FILE).write_text(json.dumps(raw))
    again = load_state(tmp_path)
    assert again is not None and (again.s3_server, again.kafka_storage) == ("localbucket", "memory")


def test_an_unknown_s3_server_is_refused_with_the_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(S3_SERVER_ENV, "minio")
    with pytest.raises(ValueError, match="localbucket, moto"):
        new_state(tmp_path, None, "s3")
    state = StackState(tmp_path, {"s3": 1}, "p", "a", "s", s3_server="minio")
    with pytest.raises(ValueError, match="localbucket, moto"):
        start_s3(state)
