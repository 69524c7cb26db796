"""Dataset card: a Markdown page saying how a dataset version was built and what it contains."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from axis_core.dataset.builder import DatasetResult

_STAGE_TEXT = {
    "label_consensus": "agreements (ML = human) and curated disagreements with enough agreeing curators",
    "image_qc": "decodable images of sane size, not blank, saturated or out of focus",
    "uniqueness": "one copy per identical image; one inspection per drop and time window",
    "similarity": "no image within a perceptual-hash distance of one already kept (same imaging mode)",
    "test_set_guard": "nothing from a plate of the frozen test set",
    "split": "train/validation by plate, stratified by class, seeded",
}


def dataset_card(
    result: DatasetResult,
    *,
    name: str,
    version: str,
    created_at: datetime,
    created_by: str = "",
    manifest_uri: str | None = None,
    notes: str = "",
) -> str:
    """Markdown card with purpose, date, manifest hash, counts, source model versions and the full config."""
    when = created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"# Dataset {name} {version}",
        "",
        f"- purpose: {result.purpose}",
        f"- created: {when}" + (f" by {created_by}" if created_by else ""),
        f"- images: {len(result.rows)}",
        f"- manifest sha256: `{result.manifest_sha256}`",
    ]
    if manifest_uri:
        lines.append(f"- manifest: {manifest_uri}")
    if notes:
        lines += ["", notes.strip()]
    lines += ["", "## Stages", ""]
    for s in result.report.stages:
        state = "on" if s.enabled else "off"
        lines.append(f"- {s.stage} ({state}): {_STAGE_TEXT.get(s.stage, '')}; removed {s.removed}")
    lines += ["", "## Counts", "", result.report.to_markdown().rstrip(), "", "## Source model versions", ""]
    if result.source_model_versions:
        lines += [f"- {v}: {n} images" for v, n in result.source_model_versions.items()]
    else:
        lines.append("- none recorded")
    config_json = json.dumps(result.config.model_dump(mode="json"), sort_keys=True, indent=2)
    lines += ["", "## Configuration", "", "```json", config_json, "```", ""]
    return "\n".join(lines)
