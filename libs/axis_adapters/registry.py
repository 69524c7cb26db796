"""Model registry port over MLflow registered models, with an in-memory fake for unit tests.

Conventions (shared by the trainer, the promotion CLI and the inference service):

- registered models ``axis-visible`` / ``axis-uv`` (names configurable), aliases ``champion`` / ``challenger``;
- each version's artifact is one single-mode bundle directory, logged in its training run under ``bundle``;
  the version's source is ``runs:/<run_id>/bundle``;
- version tags: ``threshold`` (decision threshold chosen on validation), ``metric.<name>`` (test metrics,
  e.g. ``metric.test_recall``), ``dataset_name``, ``dataset_version``, ``parent_version``, ``git_commit``,
  ``imaging_mode``, and after a promotion ``promoted_by`` / ``promoted_reason`` / ``promoted_at``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

BUNDLE_ARTIFACT = "bundle"
CHAMPION = "champion"
CHALLENGER = "challenger"
THRESHOLD_TAG = "threshold"
METRIC_TAG_PREFIX = "metric."


class RegistryError(RuntimeError):
    """The registry refused an operation or does not know the model / version / alias."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered model version as the services see it."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    threshold: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    source: str = ""


def metric_tags(metrics: dict[str, float]) -> dict[str, str]:
    """Version tags that carry metrics (``metric.<name>`` → value as text)."""
    return {f"{METRIC_TAG_PREFIX}{k}": f"{float(v):.6g}" for k, v in metrics.items()}


def _metrics_from_tags(tags: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in tags.items():
        if k.startswith(METRIC_TAG_PREFIX):
            try:
                out[k[len(METRIC_TAG_PREFIX) :]] = float(v)
            except ValueError:
                continue
    return out


def _threshold_from_tags(tags: dict[str, str]) -> float | None:
    raw = tags.get(THRESHOLD_TAG)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class Registry(Protocol):
    """What the trainer, the CLI and the inference service need from a model registry."""

    def champion(self, model_name: str) -> RegisteredVersion | None: ...
    def version(self, model_name: str, version: str) -> RegisteredVersion: ...
    def get_alias_version(self, model_name: str, alias: str) -> RegisteredVersion | None: ...
    def set_alias(self, model_name: str, alias: str, version: str) -> None: ...
    def set_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None: ...
    def download_bundle(self, model_name: str, version: str, dest_dir: str | Path) -> Path: ...
    def register_bundle(
        self, model_name: str, bundle_dir: str | Path, run_id: str, tags: dict[str, str]
    ) -> RegisteredVersion: ...


class ModelRegistry:
    """Registry over an MLflow tracking server (``http://…``) or a local store (``sqlite:///…``)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @property
    def client(self) -> Any:
        """The underlying MlflowClient (for run logging by the trainer)."""
        return self._client

    def _to_version(self, mv: Any, *, with_run_metrics: bool = True) -> RegisteredVersion:
        tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
        metrics = _metrics_from_tags(tags)
        if not metrics and with_run_metrics and mv.run_id:
            try:
                metrics = {str(k): float(v) for k, v in self._client.get_run(mv.run_id).data.metrics.items()}
            except Exception:
                metrics = {}
        return RegisteredVersion(
            name=mv.name,
            version=str(mv.version),
            run_id=mv.run_id or None,
            tags=tags,
            threshold=_threshold_from_tags(tags),
            metrics=metrics,
            aliases=tuple(getattr(mv, "aliases", None) or ()),
            source=str(mv.source or ""),
        )

    def champion(self, model_name: str) -> RegisteredVersion | None:
        """The version the ``champion`` alias points to, or None when there is none yet."""
        return self.get_alias_version(model_name, CHAMPION)

    def get_alias_version(self, model_name: str, alias: str) -> RegisteredVersion | None:
        """The version an alias points to, or None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            if _is_not_found(exc):
                return None
            raise
        return self._to_version(mv)

    def version(self, model_name: str, version: str) -> RegisteredVersion:
        """One version; RegistryError when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client.get_model_version(model_name, str(version))
        except MlflowException as exc:
            raise RegistryError(f"no version {version} of registered model {model_name!r}: {exc.message}") from None
        return self._to_version(mv)

    def latest_versions(self, model_name: str) -> list[RegisteredVersion]:
        """All versions of a model, newest first (empty when the model does not exist)."""
        found = self._client.search_model_versions(f"name = '{_quote(model_name)}'")
        return sorted((self._to_version(mv, with_run_metrics=False) for mv in found), key=lambda v: -int(v.version))

    def find_versions(self, model_name: str, tag: str, value: str) -> list[RegisteredVersion]:
        """Versions of a model carrying ``tag = value`` (e.g. the event that produced them)."""
        query = f"name = '{_quote(model_name)}' and tags.`{_quote(tag)}` = '{_quote(value)}'"
        return [self._to_version(mv, with_run_metrics=False) for mv in self._client.search_model_versions(query)]

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point an alias at a version (moves it when it exists)."""
        self._client.set_registered_model_alias(model_name, alias, str(version))

    def set_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        """Add or overwrite tags on a version."""
        for k, v in tags.items():
            self._client.set_model_version_tag(model_name, str(version), k, str(v))

    def download_bundle(self, model_name: str, version: str, dest_dir: str | Path) -> Path:
        """Download a version's bundle directory into ``dest_dir``; returns the bundle's path."""
        import mlflow.artifacts

        mv = self._client.get_model_version(model_name, str(version))
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        source = str(mv.source or "")
        if mv.run_id and source == f"runs:/{mv.run_id}/{BUNDLE_ARTIFACT}":
            path = mlflow.artifacts.download_artifacts(
                run_id=mv.run_id, artifact_path=BUNDLE_ARTIFACT, dst_path=str(dest), tracking_uri=self.tracking_uri
            )
        else:
            uri = self._client.get_model_version_download_uri(model_name, str(version))
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dest), tracking_uri=self.tracking_uri
            )
        return Path(path)

    def read_run_text(self, run_id: str, path: str) -> str | None:
        """A run's text artifact (e.g. ``test_predictions.jsonl``), or None when the run has no such file."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            with tempfile.TemporaryDirectory(prefix="axis-artifact-") as tmp:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=self.tracking_uri
                )
                return Path(local).read_text(encoding="utf-8")
        except (MlflowException, OSError):
            return None

    def log_run_text(self, run_id: str, text: str, path: str) -> None:
        """Store text as an artifact of a run (e.g. the gate report on the challenger's run)."""
        self._client.log_text(run_id, text, path)

    def log_run_figure(self, run_id: str, figure: Any, path: str) -> None:
        """Store a matplotlib figure as a PNG artifact of a run."""
        self._client.log_figure(run_id, figure, path)

    def register_bundle(
        self, model_name: str, bundle_dir: str | Path, run_id: str, tags: dict[str, str]
    ) -> RegisteredVersion:
        """Log ``bundle_dir`` in the run under ``bundle`` and register it as a new version with ``tags``."""
        from mlflow.exceptions import MlflowException

        bundle = Path(bundle_dir)
        if not bundle.is_dir():
            raise RegistryError(f"bundle directory {bundle} does not exist")
        self._client.log_artifacts(run_id, str(bundle), artifact_path=BUNDLE_ARTIFACT)
        try:
            self._client.create_registered_model(model_name)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
                raise
        mv = self._client.create_model_version(
            name=model_name,
            source=f"runs:/{run_id}/{BUNDLE_ARTIFACT}",
            run_id=run_id,
            tags={k: str(v) for k, v in tags.items()},
        )
        return self._to_version(mv)


def _is_not_found(exc: Any) -> bool:
    code = str(getattr(exc, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "NOT_FOUND" in code or "not found" in str(exc).lower()


def _quote(name: str) -> str:
    return name.replace("'", "''")
