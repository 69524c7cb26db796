"""In-memory model registry for unit tests (same methods as axis_adapters.registry.ModelRegistry)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axis_adapters.registry import (
    BUNDLE_ARTIFACT,
    CHAMPION,
    RegisteredVersion,
    RegistryError,
    _metrics_from_tags,
    _threshold_from_tags,
)


@dataclass
class InMemoryRegistry:
    """Fake registry for unit tests: bundles are copied into a temporary directory."""

    versions: dict[str, list[RegisteredVersion]] = field(default_factory=dict)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    bundles: dict[tuple[str, str], Path] = field(default_factory=dict)
    run_artifacts: dict[tuple[str, str], Any] = field(default_factory=dict)  # (run_id, path) -> text or figure
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="axis-registry-")))

    def _find(self, model_name: str, version: str) -> RegisteredVersion:
        for v in self.versions.get(model_name, []):
            if v.version == str(version):
                aliases = tuple(a for (m, a), ver in self.aliases.items() if m == model_name and ver == v.version)
                return RegisteredVersion(**{**v.__dict__, "aliases": aliases})
        raise RegistryError(f"no version {version} of registered model {model_name!r}")

    def find_versions(self, model_name: str, tag: str, value: str) -> list[RegisteredVersion]:
        """Versions carrying ``tag = value``."""
        return [v for v in self.versions.get(model_name, []) if v.tags.get(tag) == value]

    def champion(self, model_name: str) -> RegisteredVersion | None:
        """The ``champion`` version or None."""
        return self.get_alias_version(model_name, CHAMPION)

    def version(self, model_name: str, version: str) -> RegisteredVersion:
        """One version; RegistryError when missing."""
        return self._find(model_name, version)

    def get_alias_version(self, model_name: str, alias: str) -> RegisteredVersion | None:
        """The version an alias points to, or None."""
        ver = self.aliases.get((model_name, alias))
        return None if ver is None else self._find(model_name, ver)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point an alias at an existing version."""
        self._find(model_name, version)
        self.aliases[(model_name, alias)] = str(version)

    def set_tags(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        """Add or overwrite version tags."""
        old = self._find(model_name, version)
        merged = {**old.tags, **{k: str(v) for k, v in tags.items()}}
        new = RegisteredVersion(
            name=old.name,
            version=old.version,
            run_id=old.run_id,
            tags=merged,
            threshold=_threshold_from_tags(merged),
            metrics=_metrics_from_tags(merged) or old.metrics,
            source=old.source,
        )
        self.versions[model_name] = [new if v.version == old.version else v for v in self.versions[model_name]]

    def read_run_text(self, run_id: str, path: str) -> str | None:
        """A stored text artifact or None."""
        value = self.run_artifacts.get((run_id, path))
        return value if isinstance(value, str) else None

    def log_run_text(self, run_id: str, text: str, path: str) -> None:
        """Keep a text artifact."""
        self.run_artifacts[(run_id, path)] = text

    def log_run_figure(self, run_id: str, figure: Any, path: str) -> None:
        """Keep a figure artifact (the figure object itself)."""
        self.run_artifacts[(run_id, path)] = figure

    def download_bundle(self, model_name: str, version: str, dest_dir: str | Path) -> Path:
        """Copy the stored bundle to ``dest_dir/bundle``."""
        self._find(model_name, version)
        dest = Path(dest_dir) / BUNDLE_ARTIFACT
        shutil.copytree(self.bundles[(model_name, str(version))], dest, dirs_exist_ok=True)
        return dest

    def register_bundle(
        self, model_name: str, bundle_dir: str | Path, run_id: str, tags: dict[str, str]
    ) -> RegisteredVersion:
        """Store a copy of the bundle as the next version."""
        existing = self.versions.setdefault(model_name, [])
        version = str(len(existing) + 1)
        stored = self.root / model_name / version
        shutil.copytree(Path(bundle_dir), stored)
        str_tags = {k: str(v) for k, v in tags.items()}
        rv = RegisteredVersion(
            name=model_name,
            version=version,
            run_id=run_id,
            tags=str_tags,
            threshold=_threshold_from_tags(str_tags),
            metrics=_metrics_from_tags(str_tags),
            source=f"runs:/{run_id}/{BUNDLE_ARTIFACT}",
        )
        existing.append(rv)
        self.bundles[(model_name, version)] = stored
        return rv
