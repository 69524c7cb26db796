"""docs/asyncapi.yaml and docs/openapi/*.json are what the code generates (`make docs`), and say what they must."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from axis_cli import apidocs
from axis_contracts.catalog import EVENT_TYPES
from axis_contracts.topics import ALL_TOPICS

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return apidocs.render_all()


def test_the_committed_api_documents_are_the_generated_ones(generated: dict[str, str]) -> None:
    stale = apidocs.stale(ROOT, generated)
    assert not stale, f"stale API documents {stale}: run `make docs` and commit the result"


def test_a_changed_or_missing_or_unknown_file_counts_as_stale(generated: dict[str, str], tmp_path: Path) -> None:
    for rel, text in generated.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert apidocs.stale(tmp_path, generated) == []
    asyncapi = tmp_path / apidocs.ASYNCAPI_PATH
    asyncapi.write_text(asyncapi.read_text().replace("lims.user-scored.v1", "lims.user-scored.v0"))
    (tmp_path / apidocs.OPENAPI_DIR / "curation.json").unlink()
    (tmp_path / apidocs.OPENAPI_DIR / "retired.json").write_text("{}")
    assert sorted(apidocs.stale(tmp_path, generated)) == sorted(
        [apidocs.ASYNCAPI_PATH, f"{apidocs.OPENAPI_DIR}/curation.json", f"{apidocs.OPENAPI_DIR}/retired.json"]
    )


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_topic_has_a_channel_a_keyed_message_and_a_valid_example(generated: dict[str, str]) -> None:
    doc = yaml.safe_load(generated[apidocs.ASYNCAPI_PATH])
    assert doc["asyncapi"] == "3.0.0"
    assert sorted(ch["address"] for ch in doc["channels"].values()) == sorted(ALL_TOPICS)
    for name, model in EVENT_TYPES.items():
        channel = doc["channels"][model.TOPIC]
        [message] = [_resolve(doc, m["$ref"]) for m in channel["messages"].values()]
        assert message["name"] == name
        assert message["bindings"]["kafka"]["key"]["description"]
        assert "content-type" in _resolve(doc, message["headers"]["$ref"])["properties"]
        payload = _resolve(doc, message["payload"]["$ref"])
        assert set(payload["required"]) <= set(payload["properties"]), name
        # the documented example is accepted by the model consumers validate with, and carries its documented key
        [example] = message["examples"]
        event = model.model_validate(example["payload"])
        key = event.key() if name != "DeadLetter" else example["payload"]["source_key"]
        assert f"`{key}`" in example["summary"]
        assert example["headers"] == {"content-type": "application/json"}


def test_operations_name_a_publisher_for_every_topic_and_a_group_for_group_consumers(generated: dict[str, str]) -> None:
    doc = yaml.safe_load(generated[apidocs.ASYNCAPI_PATH])
    sent = {
        _resolve(doc, op["channel"]["$ref"])["address"] for op in doc["operations"].values() if op["action"] == "send"
    }
    assert sent == set(ALL_TOPICS)
    received = {
        (op["tags"][0]["name"], _resolve(doc, op["channel"]["$ref"])["address"]): op
        for op in doc["operations"].values()
        if op["action"] == "receive"
    }
    assert received[("discrepancy", "lims.user-scored.v1")]["bindings"]["kafka"]["groupId"]["enum"] == [
        "axis-discrepancy"
    ]
    assert received[("inference", "imaging.image-captured.v1")]["bindings"]["kafka"]["groupId"]["enum"] == [
        "axis-inference"
    ]
    # every instance of inference hears every promotion: no consumer group
    assert "groupId" not in received[("inference", "models.model-promoted.v1")]["bindings"]["kafka"]


def test_openapi_files_describe_the_routes_the_apps_serve(generated: dict[str, str]) -> None:
    import json

    gateway = json.loads(generated[f"{apidocs.OPENAPI_DIR}/lims-gateway.json"])
    assert {"/health", "/v1/user-scores", "/v1/stats"} <= set(gateway["paths"])
    assert gateway["paths"]["/v1/user-scores"]["post"]["responses"].keys() >= {"202", "409", "415"}
    curation = json.loads(generated[f"{apidocs.OPENAPI_DIR}/curation.json"])
    assert {"/health", "/v1/tokens", "/v1/queue", "/v1/plates/{barcode}"} <= set(curation["paths"])
    health = json.loads(generated[f"{apidocs.OPENAPI_DIR}/service-health.json"])
    assert set(health["paths"]) == {"/health", "/metrics"}


def test_the_receive_operations_are_the_services_own_subscribers() -> None:
    """Each AXIS consumer's subscribers, as its own wiring registers them, are what the catalog says it consumes;
    FastStream's description of each is typed with the topic's model (docs build fails otherwise)."""
    from dataclasses import replace

    from axis_cli.apidocs_catalog import check_subscriptions, flows, service_subscriptions

    declared = service_subscriptions()
    assert {p: sorted(t for s in subs for t in s.topics) for p, subs in declared.items() if subs} == {
        "inference": sorted([EVENT_TYPES["ImageCaptured"].TOPIC, EVENT_TYPES["ModelPromoted"].TOPIC]),
        "discrepancy": sorted(
            EVENT_TYPES[n].TOPIC for n in ("CrystalScored", "UserScored", "ImageCaptured", "CuratorLabelled")
        ),
        "curation": sorted(
            EVENT_TYPES[n].TOPIC for n in ("CrystalScored", "ComparisonRecorded", "DiscrepancyFound", "CuratorLabelled")
        ),
        "trainer": [EVENT_TYPES["DatasetExported"].TOPIC],
    }
    table = flows()
    assert check_subscriptions(table, declared) == []

    # the catalog claims a consumer the code lacks, and loses one the code has: both are named
    wrong = dict(table)
    exported = table["DatasetExported"]
    wrong["DatasetExported"] = replace(exported, receive=tuple(s for s in exported.receive if s.party != "trainer"))
    registered = table["ModelRegistered"]
    wrong["ModelRegistered"] = replace(
        registered, receive=(*registered.receive, replace(exported.receive[0], party="inference"))
    )
    problems = check_subscriptions(wrong, declared)
    assert len(problems) == 2, problems
    assert "trainer consumes DatasetExported" in problems[0]
    assert "the catalog says inference consumes ModelRegistered" in problems[1]

    # a group changed in the code is a mismatch too
    moved = {**declared, "trainer": [replace(declared["trainer"][0], group_id="another-group")]}
    assert len(check_subscriptions(table, moved)) == 2


def test_a_service_subscriber_gets_raw_records_not_validated_payloads() -> None:
    """The payload type is declared for the AsyncAPI only: a malformed record reaches the handler as it was."""
    import asyncio

    from axis_adapters.subscriber import raw_subscriber
    from faststream.kafka import KafkaBroker, TestKafkaBroker

    broker = KafkaBroker("127.0.0.1:9092")
    seen: list[Any] = []

    async def handle(records: list[Any]) -> None:
        seen.extend(records)

    raw_subscriber(broker, {"t.v1": EVENT_TYPES["UserScored"]}, handle, party="p", group_id="g", batch=False)

    async def send() -> None:
        async with TestKafkaBroker(broker) as br:
            await br.publish(b"not json at all", "t.v1", key=b"k")

    asyncio.run(send())
    assert [(r.topic, r.key, r.value) for r in seen] == [("t.v1", b"k", b"not json at all")]


def test_the_send_operations_are_the_services_own_publishers() -> None:
    """What each AXIS party's wiring declares with ``publish_to(broker)`` is what the catalog says it sends."""
    from dataclasses import replace

    from axis_adapters.publisher import publications
    from axis_cli.apidocs_catalog import check_publications, flows, service_brokers

    declared = {party: publications(broker) for party, broker in service_brokers().items()}
    sends = {p: sorted(m.__name__ for pub in pubs for m in pub.topics.values()) for p, pubs in declared.items()}
    assert sends == {
        "ingest": ["ImageCaptured"],
        "inference": ["CrystalScored", "DeadLetter"],
        "lims-gateway": ["UserScored"],
        "discrepancy": ["ComparisonRecorded", "DeadLetter", "DiscrepancyFound"],
        "curation": ["CuratorLabelled", "DatasetExported", "DeadLetter"],
        "trainer": ["DeadLetter", "ModelRegistered"],
        "promote": ["ModelPromoted"],
    }
    table = flows()
    assert check_publications(table, declared) == []
    # the catalog loses a sender the code has, and claims one it lacks: both are named
    wrong = dict(table)
    registered = table["ModelRegistered"]
    wrong["ModelRegistered"] = replace(registered, send=())
    found = table["DiscrepancyFound"]
    wrong["DiscrepancyFound"] = replace(found, send=(*found.send, replace(found.send[0], party="trainer")))
    assert check_publications(wrong, declared) == [
        "trainer sends ModelRegistered but the catalog does not say so",
        "the catalog says trainer sends DiscrepancyFound; its code does not",
    ]


def test_an_event_publisher_sends_only_what_it_declares() -> None:
    """Through FastStream's test broker: a declared event arrives with its key and headers; another topic is
    refused before anything is sent."""
    import asyncio

    from axis_adapters.kafka import publish_event
    from axis_adapters.publisher import EventPublisher, UndeclaredTopic
    from axis_adapters.subscriber import raw_subscriber
    from axis_cli.apidocs_examples import EXAMPLES
    from faststream.kafka import KafkaBroker, TestKafkaBroker

    broker = KafkaBroker("127.0.0.1:9092")
    model = EVENT_TYPES["UserScored"]
    publisher = EventPublisher(broker, "lims-gateway", (model,))
    got: list[Any] = []

    async def seen(records: list[Any]) -> None:
        got.extend(records)

    raw_subscriber(broker, {model.TOPIC: model}, seen, party="test", group_id="g", batch=False)

    event = EXAMPLES["UserScored"]()
    other = EXAMPLES["CrystalScored"]()

    async def send() -> None:
        async with TestKafkaBroker(broker):
            await publish_event(publisher, event)
            with pytest.raises(UndeclaredTopic, match="lims-gateway publishes only on"):
                await publish_event(publisher, other)

    asyncio.run(send())
    assert [(r.topic, r.key, model.model_validate_json(r.value)) for r in got] == [
        (model.TOPIC, event.key().encode(), event)
    ]
