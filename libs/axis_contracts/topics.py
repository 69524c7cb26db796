"""Kafka topic names, one constant each; the version is part of the name."""

IMAGE_CAPTURED = "imaging.image-captured.v1"
CRYSTAL_SCORED = "scoring.crystal-scored.v1"
USER_SCORED = "lims.user-scored.v1"
DISCREPANCY_FOUND = "curation.discrepancy-found.v1"
COMPARISON_RECORDED = "discrepancy.comparison-recorded.v1"
CURATOR_LABELLED = "curation.curator-labelled.v1"
DATASET_EXPORTED = "datasets.dataset-exported.v1"
MODEL_REGISTERED = "models.model-registered.v1"
MODEL_PROMOTED = "models.model-promoted.v1"
DEAD_LETTER = "ops.dead-letter.v1"

ALL_TOPICS: tuple[str, ...] = (
    IMAGE_CAPTURED,
    CRYSTAL_SCORED,
    USER_SCORED,
    DISCREPANCY_FOUND,
    COMPARISON_RECORDED,
    CURATOR_LABELLED,
    DATASET_EXPORTED,
    MODEL_REGISTERED,
    MODEL_PROMOTED,
    DEAD_LETTER,
)

# Topics the read models are rebuilt from (docs/operations.md, "Schemas per service"): kept forever.
REPLAYED_TOPICS: tuple[str, ...] = (
    IMAGE_CAPTURED,
    CRYSTAL_SCORED,
    USER_SCORED,
    DISCREPANCY_FOUND,
    COMPARISON_RECORDED,
    CURATOR_LABELLED,
    DATASET_EXPORTED,
)
