"""The stack env file: exactly the documented keys, readable by the services' settings, fresh passwords."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from axis_adapters.settings import ServiceSettings
from axis_stack.state import ENV_KEYS, load_state, new_state, parse_env, save_state, write_env_file

pytestmark = pytest.mark.unit


def test_env_file_has_exactly_the_keys_and_services_read_it(tmp_path: Path) -> None:
    state = new_state(tmp_path, {"kafka": 19092, "postgres": 15432, "s3": 19000, "mlflow": 15000}, "memory")
    path = write_env_file(state)
    env = parse_env(path.read_text())
    assert tuple(env) == ENV_KEYS
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = ServiceSettings(_env_file=str(path))  # type: ignore[call-arg]
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert (settings.postgres.port, settings.postgres.dbname) == (15432, "axis")
    assert settings.postgres.password.get_secret_value() == state.pg_password
    assert settings.s3.endpoint == "127.0.0.1:19000" and settings.s3.secure is False
    assert settings.mlflow.tracking_uri == "http://127.0.0.1:15000"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:19000"
    # every service's role has its own password, and a service's settings pick its own
    from axis_curation.settings import CurationSettings

    roles = {k: v for k, v in env.items() if k.startswith("AXIS_ROLES__")}
    assert len(roles) == 6 and len(set(roles.values())) == 6
    curation = CurationSettings(_env_file=str(path))  # type: ignore[call-arg]
    assert curation.postgres.user == "axis_curation"
    assert curation.postgres.password.get_secret_value() == env["AXIS_ROLES__CURATION"]


def test_passwords_are_random_per_data_dir_and_kept(tmp_path: Path) -> None:
    a = new_state(tmp_path / "a", None, "memory")
    b = new_state(tmp_path / "b", None, "memory")
    assert a.pg_password != b.pg_password and a.s3_secret_key != b.s3_secret_key
    (tmp_path / "a").mkdir()
    save_state(a)
    again = load_state(tmp_path / "a")
    assert again is not None and (again.pg_password, again.ports) == (a.pg_password, a.ports)
