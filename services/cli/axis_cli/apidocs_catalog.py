"""Who publishes and who consumes each event, and its message key: the input of apidocs.

The payload schemas come from the pydantic models (axis_contracts.events); what is written here is what a model
cannot say: which party sends or receives it, in which consumer group, and how the key is made. An event added
to ``axis_contracts.catalog.EVENT_TYPES`` without an entry in ``flows()`` and in ``apidocs_examples.EXAMPLES`` stops
``make docs`` with a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

EXPERIMENT_KEY = (
    '"{plate_barcode}:{well}:{drop}" (e.g. `PL0042:B3:1`): all events of one drop on one partition, in order'
)

BOOTSTRAP = "127.0.0.1:9092"  # placeholder of the brokers built for the description; nothing connects

PARTIES: dict[str, str] = {
    "imaging-robot": "An imager's control software, outside AXIS Loop (docs/imaging.md).",
    "ingest": "`python -m axis_ingest`: watches an imager's folder tree, stores each image, announces it.",
    "inference": "`python -m axis_inference`: scores images with the champion models.",
    "lims": "The facility's LIMS, outside AXIS Loop (docs/lims.md).",
    "lims-gateway": "`python -m axis_discrepancy.lims_gateway`: `POST /v1/user-scores` over HTTP for a LIMS.",
    "discrepancy": "`python -m axis_discrepancy`: compares ML and human scores per inspection.",
    "curation": "`python -m axis_curation`: curator queue, plate maps, dataset export.",
    "trainer": "`python -m axis_trainer`: fine-tunes and registers new model versions.",
    "promote": "`python -m axis_cli promote` and the MLflow alias watch `python -m axis_cli.promote_watch`.",
    "operators": "`python -m axis_cli dlq`: lists dead letters and replays them after a fix.",
}


@dataclass(frozen=True)
class Side:
    """One party's part in a flow: what it does with the event, and its consumer group when it consumes."""

    party: str
    how: str
    group: str | None = None


@dataclass(frozen=True)
class Flow:
    """An event's topic-level facts beyond its payload."""

    key: str
    send: tuple[Side, ...]
    receive: tuple[Side, ...]
    nullable_key: bool = False
    note: str = ""  # the message's description: which of several events about one thing is the current one


def flows() -> dict[str, Flow]:
    """The flow of every event, by event type; consumer groups are read from the services' settings."""
    from axis_inference.settings import CONSUMER_GROUP as INFERENCE_GROUP
    from axis_inference.settings import InferenceOptions
    from axis_trainer.settings import CONSUMER_GROUP as TRAINER_GROUP

    inf = InferenceOptions()
    table = {
        "ImageCaptured": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "The image is in the object store before the event is sent, in a bucket the inference service may read "
                "(`AXIS_S3__ALLOWED_BUCKETS`). The visible and the UV image of one drop in one imaging session share "
                "`inspection_id`; their scores are fused."
            ),
            send=(
                Side("imaging-robot", "Stores the image in the object store first, then publishes the event."),
                Side(
                    "ingest", "Publishes one event per new image file, after storing the image (outbox in PostgreSQL)."
                ),
            ),
            receive=(
                Side(
                    "inference",
                    f"Batches of up to {inf.batch_size} images (or {inf.batch_timeout_ms} ms); stores the scores, then "
                    "publishes CrystalScored; offsets are committed after that.",
                    INFERENCE_GROUP,
                ),
            ),
        ),
        "CrystalScored": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "An inspection is scored again when another of its modes is scored and when a newer model version "
                "re-scores it: the message with the latest `scored_at` is the current one. `label` is `crystal` when "
                "`fused_probability >= threshold`."
            ),
            send=(
                Side(
                    "inference",
                    "One event per inspection each time a mode of it is scored (fused probability: the max over "
                    "the modes scored so far) and again when a newer model version re-scores it.",
                ),
            ),
            receive=(
                Side(
                    "lims",
                    "Shows the scores to scientists. Uses its own consumer group (e.g. `lims`) from the earliest "
                    "offset; the message with the latest `scored_at` of an inspection is the current one.",
                    "lims",
                ),
            ),
        ),
        "UserScored": Flow(
            key="the experiment key when plate_barcode and well are given, else the inspection_id",
            note=(
                "Name the drop by `inspection_id`, or by `plate_barcode` + `well` (+ `drop`) + `scored_at`: the latest "
                "inspection of that drop imaged at or before `scored_at`. Per inspection the latest `scored_at` wins. "
                "`score` is a class of the facility's scheme; an unknown class, or an inspection AXIS has not seen, is "
                "dead-lettered with the reason."
            ),
            send=(
                Side(
                    "lims",
                    "Publishes the score a scientist entered; a changed score is a new event, later `scored_at`.",
                ),
                Side("lims-gateway", "Publishes each accepted `POST /v1/user-scores` (HTTP 202) once."),
            ),
            receive=(),
        ),
        "DiscrepancyFound": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "One per curator queue item: an inspection whose current ML score and user score disagree; "
                "`discrepancy_id` names the item."
            ),
            send=(
                Side(
                    "discrepancy",
                    "Published after commit for every new disagreement (outbox: `published_at` of the item), so a "
                    "crash between commit and publish is repaired by the next batch.",
                ),
            ),
            receive=(),
        ),
        "ComparisonRecorded": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "Per inspection the highest `revision` is the current comparison; `agrees` rows are training "
                "candidates."
            ),
            send=(
                Side(
                    "discrepancy",
                    "One event per new comparison revision of an inspection, agreements and disagreements alike; "
                    "the highest `revision` is the current one.",
                ),
            ),
            receive=(),
        ),
        "CuratorLabelled": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "A label, or the withdrawal of one (`withdraws`); `item_status` and `resolved_label` are the queue "
                "item's state after it under the consensus rule."
            ),
            send=(Side("curation", "One event per label a curator gives or takes back (the curator queue)."),),
            receive=(),
        ),
        "DatasetExported": Flow(
            key='"{dataset_name}:{dataset_version}"',
            send=(
                Side(
                    "curation",
                    "Published when an admin exports (or publishes) a dataset version (`POST /v1/datasets`, "
                    "`python -m axis_curation export`).",
                ),
            ),
            receive=(
                Side(
                    "trainer",
                    "Trains on a train-purpose dataset and records it as processed; one record at a time.",
                    TRAINER_GROUP,
                ),
            ),
        ),
        "ModelRegistered": Flow(
            key="the registered model name",
            send=(Side("trainer", "One event per model version registered in MLflow (alias `challenger`)."),),
            receive=(),
        ),
        "ModelPromoted": Flow(
            key="the registered model name",
            send=(Side("promote", "Published when the `champion` alias moves (by the CLI or seen by the watch)."),),
            receive=(
                Side(
                    "inference",
                    "Every instance, without a consumer group, from the latest offset: checks the registry and "
                    "switches to the new champion without a restart (it also polls the registry).",
                ),
            ),
        ),
        "DeadLetter": Flow(
            note=(
                "`raw_value` is the rejected message (UTF-8 text, or hex when `raw_encoding` is `hex`), `error` the "
                "reason; a message larger than the kept prefix is whole at `raw_uri`."
            ),
            key="the key of the rejected record, as it was (none when it had none, or when the broker refused the "
            "whole dead letter and the bare one, without the raw message, was sent)",
            nullable_key=True,
            send=(),  # every AXIS consumer: added by _with_consumers
            receive=(Side("operators", "Reads the whole topic without a consumer group; replays after a fix."),),
        ),
    }
    return _with_consumers(table)


SERVICES = ("inference", "discrepancy", "curation", "trainer")  # the AXIS consumers whose subscribers are read
# the AXIS parties whose publishers are read (their code's ``publish_to(broker)``)
SENDERS = ("ingest", "inference", "lims-gateway", "discrepancy", "curation", "trainer", "promote")


def service_brokers() -> dict[str, Any]:
    """Each AXIS party's KafkaBroker with the subscribers and publishers its own wiring registers (default
    settings, no environment read, nothing connected): what the AsyncAPI document's operations of the AXIS
    services are generated from."""
    from axis_adapters.settings import KafkaSettings
    from axis_curation.projector import GROUP_PREFIX
    from axis_curation.projector import subscribe as curation_subscribe
    from axis_curation.settings import CurationOptions
    from axis_discrepancy.app import register as discrepancy_register
    from axis_discrepancy.settings import DiscrepancyOptions, DiscrepancySettings
    from axis_inference.service import subscribe as inference_subscribe
    from axis_inference.settings import InferenceOptions
    from axis_trainer.app import register as trainer_register
    from axis_trainer.settings import TrainerSettings
    from faststream.kafka import KafkaBroker

    async def nothing(records: Any) -> None:
        return None

    kafka = KafkaSettings()
    none = cast(Any, None)
    brokers = {party: KafkaBroker(BOOTSTRAP) for party in SERVICES}
    inference_subscribe(
        brokers["inference"], InferenceOptions(), kafka, on_images=nothing, on_promoted=nothing, progress=None
    )
    disc = DiscrepancySettings.model_construct(discrepancy=DiscrepancyOptions(), kafka=kafka)
    discrepancy_register(brokers["discrepancy"], disc, lambda: none)
    cur = CurationOptions()
    curation_subscribe(brokers["curation"], f"{GROUP_PREFIX}-*", nothing, None, batch=cur.read_model_batch, kafka=kafka)
    trainer_register(brokers["trainer"], TrainerSettings.model_construct(kafka=kafka), none)
    for party, publish_to in _publishers().items():
        for declare in publish_to:
            declare(brokers.setdefault(party, KafkaBroker(BOOTSTRAP)))
    return brokers


def _publishers() -> dict[str, tuple[Any, ...]]:
    """Each AXIS party's ``publish_to(broker)``: the typed publishers its wiring declares before it starts."""
    from axis_curation.context import publish_to as curation_api
    from axis_curation.projector import publish_to as curation_projector
    from axis_discrepancy.app import publish_to as discrepancy
    from axis_discrepancy.lims_gateway import publish_to as lims_gateway
    from axis_inference.service import publish_to as inference
    from axis_ingest.app import publish_to as ingest
    from axis_trainer.app import publish_to as trainer

    from axis_cli.promote import publish_to as promote

    return {
        "ingest": (ingest,),
        "inference": (inference,),
        "lims-gateway": (lims_gateway,),
        "discrepancy": (discrepancy,),
        "curation": (curation_projector, curation_api),
        "trainer": (trainer,),
        "promote": (promote,),
    }


def _declared(declared: dict[str, list[Any]]) -> Any:
    """(party, declaration, topic, model) of every topic a Subscription or Publication names."""
    for party, decls in declared.items():
        for decl in decls:
            for topic, model in decl.topics.items():
                yield party, decl, topic, model


def check_publications(table: dict[str, Flow], declared: dict[str, list[Any]]) -> list[str]:
    """Where the catalog's send sides of the AXIS parties differ from their code's publishers (empty: none)."""
    pairs = list(_declared(declared))
    code = {(party, model.__name__) for party, _, topic, model in pairs if model.TOPIC == topic}
    wrong_topic = [
        f"{party} sends {model.__name__} on {topic!r}, not its topic {model.TOPIC!r}"
        for party, _, topic, model in pairs
        if model.TOPIC != topic
    ]
    listed = {(s.party, name) for name, f in table.items() for s in f.send if s.party in SENDERS}
    return [
        *wrong_topic,
        *(f"{p} sends {n} but the catalog does not say so" for p, n in sorted(code - listed)),
        *(f"the catalog says {p} sends {n}; its code does not" for p, n in sorted(listed - code)),
    ]


def service_subscriptions() -> dict[str, list[Any]]:
    """What each AXIS consumer's code subscribes to (``axis_adapters.subscriber.Subscription``), by party."""
    from axis_adapters.subscriber import subscriptions

    return {party: subscriptions(broker) for party, broker in service_brokers().items()}


def check_subscriptions(table: dict[str, Flow], declared: dict[str, list[Any]]) -> list[str]:
    """Where the catalog's receive sides of the AXIS consumers differ from their code's subscribers (empty: none)."""
    pairs = list(_declared(declared))
    code = {(party, model.__name__, sub.group_id) for party, sub, topic, model in pairs if model.TOPIC == topic}
    wrong_topic = [
        f"{party} reads {model.__name__} from {topic!r}, not its topic {model.TOPIC!r}"
        for party, _, topic, model in pairs
        if model.TOPIC != topic
    ]
    listed = {(s.party, name, s.group) for name, f in table.items() for s in f.receive if s.party in declared}
    return [
        *wrong_topic,
        *(
            f"{p} consumes {n} (group {g}) but the catalog does not say so"
            for p, n, g in sorted(code - listed, key=str)
        ),
        *(
            f"the catalog says {p} consumes {n} (group {g}); its code does not"
            for p, n, g in sorted(listed - code, key=str)
        ),
    ]


def _with_consumers(table: dict[str, Flow]) -> dict[str, Flow]:
    """Add the consumers whose topics the code lists: the discrepancy service's settings, curation's projector.

    Every AXIS consumer dead-letters what it cannot process, so each also publishes DeadLetter.
    """
    from axis_curation.projector import GROUP_PREFIX
    from axis_curation.settings import CurationOptions
    from axis_discrepancy.settings import DiscrepancyOptions

    declared = service_subscriptions()
    (disc_sub,) = declared["discrepancy"]
    (cur_sub,) = declared["curation"]
    disc, cur = DiscrepancyOptions(), CurationOptions()
    disc_topics, cur_topics = ", ".join(disc_sub.topics), ", ".join(cur_sub.topics)
    added: dict[str, list[Side]] = {}
    for model in disc_sub.topics.values():
        how = (
            f"Micro-batches of up to {disc.max_records} records of {disc_topics} (or "
            f"{disc.batch_timeout_ms} ms), one PostgreSQL transaction each; offsets are committed after it."
        )
        added.setdefault(model.__name__, []).append(Side("discrepancy", how, disc_sub.group_id))
    for model in cur_sub.topics.values():
        how = (
            f"Keeps curation's read model: micro-batches of up to {cur.read_model_batch} records of "
            f"{cur_topics}, one PostgreSQL transaction each. The group is `{GROUP_PREFIX}-<generation>`: "
            "a rebuild starts a new generation that reads every topic from the earliest offset."
        )
        added.setdefault(model.__name__, []).append(Side("curation", how, cur_sub.group_id))
    out = {n: replace(f, receive=(*f.receive, *added.get(n, ()))) for n, f in table.items()}
    consumers = sorted({s.party for f in out.values() for s in f.receive} - {"lims", "operators"})
    dead = Side("", "Publishes each record it cannot process, once, with the reason; then goes on.")
    out["DeadLetter"] = replace(out["DeadLetter"], send=tuple(replace(dead, party=p) for p in consumers))
    return out
