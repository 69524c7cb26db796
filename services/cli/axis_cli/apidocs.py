"""The contracts for integrators, generated from the code: docs/asyncapi.yaml and docs/openapi/<api>.json.

``python -m axis_cli.apidocs`` (``make docs``) writes them; ``--check`` writes nothing and exits 1 naming the
stale files (the unit test tests/unit/test_api_docs_fresh.py does the same in memory).

AsyncAPI 3.0.0 comes from FastStream's own generator (``faststream.specification.AsyncAPI``) run over the
AXIS services' own brokers and a description of the outside parties. Every operation of an AXIS service is its
real subscriber or publisher: ``apidocs_catalog.service_brokers()`` builds each service's KafkaBroker with the
subscribers its wiring registers (``axis_adapters.subscriber.raw_subscriber``, which declares the topic's model
to FastStream and leaves validation to the service) and the publishers it declares (``publish_to(broker)``:
``axis_adapters.publisher.EventPublisher``, a typed FastStream publisher per event); the build stops when they
differ from the catalog (``check_subscriptions``, ``check_publications``). The parties outside AXIS Loop (the
robot, the LIMS, operators) are described by one broker each with a typed publisher or subscriber per event
(``apidocs_catalog.flows``). FastStream leaves message keys, headers and examples out (TODO in its Message
model) and makes one channel per operation; this module adds the three and merges the channels into one per topic.

OpenAPI comes from each FastAPI app's own ``openapi()`` (``axis_cli.apidocs_openapi``), built without connecting to
anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import yaml
from axis_adapters.publisher import publications
from axis_adapters.subscriber import subscriptions
from axis_contracts.catalog import EVENT_TYPES, TOPIC_EVENTS
from axis_contracts.events import Event

from axis_cli.apidocs_catalog import (
    BOOTSTRAP,
    PARTIES,
    SENDERS,
    SERVICES,
    Flow,
    Side,
    check_publications,
    check_subscriptions,
    flows,
    service_brokers,
)
from axis_cli.apidocs_examples import EXAMPLES
from axis_cli.apidocs_openapi import OPENAPI_DIR, openapi_texts

ASYNCAPI_PATH = "docs/asyncapi.yaml"
BINDING_VERSION = "0.5.0"
HEADER = "# Generated from the code by `make docs` (python -m axis_cli.apidocs): do not edit by hand.\n"

DELIVERY = """\
Delivery is **at least once** on every topic. Every AXIS producer sends with `acks=all` and without an
idempotent producer (the embedded broker, Tansu, has none), so a retried send can duplicate a message, and a
consumer can see a message again after a restart or a rebalance. Therefore:

- `event_id` (a UUID) is the idempotency key: a consumer applies an event once and ignores later copies; a
  sender that resends must resend the **same** `event_id`.
- The message key puts all events of one drop (or dataset, or model) on one partition, in order; there is no
  order across keys or topics. Where a later event supersedes an earlier one, the time field named in the
  message's description decides, not the arrival order.
- AXIS consumers commit offsets only after the effect of a message is durable (PostgreSQL, object store, the
  events it publishes).
- A message a consumer cannot process (not JSON, schema error, unknown well or inspection, missing or
  undecodable image) is never dropped and never stops the consumer: it goes to `ops.dead-letter.v1` as a
  `DeadLetter` with the raw message and the reason, once per record.
- Values are UTF-8 JSON, at most 1 MiB. Models refuse unknown fields; new fields are added as optional ones
  (same topic, `schema_version` unchanged); a breaking change gets a new topic whose name ends in the next
  version (`….v2`).
"""


# ------------------------------------------------------------------------------------------------ AsyncAPI
def _handler(model: type[Event]) -> Any:
    """A subscriber body typed with ``model``, so that FastStream describes its payload."""

    async def handle(body: Any) -> None:
        return None

    handle.__annotations__ = {"body": model, "return": None}
    handle.__name__ = f"on_{model.__name__}"
    return handle


def _op_id(party: str, action: str, event: str) -> str:
    return f"{party}.{action}.{event}"


def description_brokers(table: dict[str, Flow]) -> list[Any]:
    """One FastStream KafkaBroker per outside party (robot, LIMS, operators), with a typed publisher per event it
    sends and a typed subscriber per event it receives (the AXIS services' are their own: ``service_brokers``)."""
    from faststream.kafka import KafkaBroker

    brokers: dict[str, Any] = {}
    for name, model in EVENT_TYPES.items():
        flow = table[name]
        for side in flow.send:
            if side.party in SENDERS:  # described by the party's own publisher (service_brokers)
                continue
            broker = brokers.setdefault(side.party, KafkaBroker(BOOTSTRAP))
            broker.publisher(model.TOPIC, schema=model, title=_op_id(side.party, "send", name), description=side.how)
        for side in flow.receive:
            if side.party in SERVICES:  # described by the service's own subscriber (service_brokers)
                continue
            broker = brokers.setdefault(side.party, KafkaBroker(BOOTSTRAP))
            sub = broker.subscriber(
                model.TOPIC, group_id=side.group, title=_op_id(side.party, "receive", name), description=side.how
            )
            sub(_handler(model))
    return list(brokers.values())


def _check_catalog(table: dict[str, Flow]) -> None:
    missing = [n for n in EVENT_TYPES if n not in table or n not in EXAMPLES]
    if missing:
        raise SystemExit(
            f"events without a flow or an example: {', '.join(missing)}; add them to flows() in "
            "services/cli/axis_cli/apidocs_catalog.py and EXAMPLES in apidocs_examples.py, then run `make docs`"
        )
    unknown = sorted({s.party for f in table.values() for s in (*f.send, *f.receive)} - set(PARTIES))
    if unknown:
        raise SystemExit(f"parties without a description in PARTIES: {', '.join(unknown)}")


HEADERS_SCHEMA = "KafkaHeaders"


def _headers_schema() -> dict[str, Any]:
    from axis_adapters.kafka import JSON_HEADERS

    return {
        "type": "object",
        "properties": {
            "content-type": {
                "type": "string",
                "const": JSON_HEADERS["content-type"],
                "description": "Set by every AXIS producer. AXIS consumers read no header: send it, do not rely on it.",
            },
            "correlation_id": {
                "type": "string",
                "description": "Added by FastStream publishers (a random id per message); not part of the contract.",
            },
        },
    }


def _key_schema(name: str, flow: Flow, example_key: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"] if flow.nullable_key else "string"}
    schema["description"] = f"UTF-8 text: {flow.key}"
    if example_key is not None:
        schema["examples"] = [example_key]
    return schema


def _message(name: str, model: type[Event], flow: Flow, payload_ref: str, correlation: Any) -> dict[str, Any]:
    example = EXAMPLES[name]()
    if not isinstance(example, model):
        raise SystemExit(f"EXAMPLES[{name!r}] builds a {type(example).__name__}, not a {name}")
    from axis_adapters.kafka import JSON_HEADERS

    key = example.key() if name != "DeadLetter" else cast(Any, example).source_key
    summary = (model.__doc__ or name).strip().splitlines()[0]
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": summary,
        "description": flow.note or summary,
        "contentType": "application/json",
        "headers": {"$ref": f"#/components/schemas/{HEADERS_SCHEMA}"},
        "payload": {"$ref": payload_ref},
        "bindings": {"kafka": {"key": _key_schema(name, flow, key), "bindingVersion": BINDING_VERSION}},
        "examples": [
            {
                "name": f"{name}-example",
                "summary": f"message key `{key}`" if key is not None else "no message key",
                "headers": dict(JSON_HEADERS),
                "payload": json.loads(example.model_dump_json()),
            }
        ],
    }
    if correlation is not None:
        message["correlationId"] = correlation
    return message


def _channel(name: str, model: type[Event], flow: Flow) -> dict[str, Any]:
    def names(sides: tuple[Side, ...]) -> str:
        return ", ".join(f"`{s.party}`" for s in sides) or "no AXIS service"

    text = (
        f"`{name}` events. Key: {flow.key}.\n\nPublished by {names(flow.send)}; "
        f"consumed by {names(flow.receive)}. Python: `axis_contracts.events.{name}`, topic constant in "
        f"`axis_contracts.topics`."
    )
    from axis_contracts.topics import REPLAYED_TOPICS

    binding: dict[str, Any] = {"topic": model.TOPIC}
    if model.TOPIC in REPLAYED_TOPICS:  # as the embedded stack creates it; production Kafka needs the same
        text += (
            "\n\nKept forever: read models are rebuilt by replaying it from the earliest offset (docs/operations.md)."
        )
        binding["topicConfiguration"] = {"retention.ms": -1, "retention.bytes": -1}
    return {
        "address": model.TOPIC,
        "title": name,
        "description": text,
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        "bindings": {"kafka": {**binding, "bindingVersion": BINDING_VERSION}},
    }


def _check_payload(key: str, raw: dict[str, Any], channel: dict[str, Any]) -> None:
    """The payload FastStream derived from a service's subscriber names the model of the channel's topic."""
    name = TOPIC_EVENTS[channel["address"]].__name__
    (message,) = channel["messages"].values()
    payload = raw["components"]["messages"][unquote(message["$ref"].split("/")[-1])]["payload"]
    ref = f"#/components/schemas/{name}"
    text = json.dumps(raw["components"]["schemas"].get(unquote(payload["$ref"].split("/")[-1]), payload))
    if payload["$ref"] != ref and f'"{ref}"' not in text:
        raise SystemExit(f"FastStream describes the payload of {key} without {name}: {text[:300]}")


def _operation(op_id: str, raw: dict[str, Any], raw_channel: dict[str, Any], table: dict[str, Flow]) -> dict[str, Any]:
    party, _, name = op_id.split(".", 2)
    topic = EVENT_TYPES[name].TOPIC
    side = next(s for s in (table[name].send if raw["action"] == "send" else table[name].receive) if s.party == party)
    verb = "publishes" if raw["action"] == "send" else "consumes"
    op: dict[str, Any] = {
        "action": raw["action"],
        "channel": {"$ref": f"#/channels/{topic}"},
        "messages": [{"$ref": f"#/channels/{topic}/messages/{name}"}],
        "summary": f"{party} {verb} {name}",
        "description": raw_channel.get("description") or side.how,
        "tags": [{"name": party, "description": PARTIES[party]}],
    }
    if raw["action"] == "receive":
        group: dict[str, Any] | None = None
        if side.group and side.group.endswith("*"):  # a group per generation of a read model
            group = {"type": "string", "pattern": "^" + side.group[:-1].replace(".", "\\.") + ".+$"}
        elif side.group:
            group = {"type": "string", "enum": [side.group]}
        binding: dict[str, Any] = {"bindingVersion": BINDING_VERSION}
        if group:
            binding["groupId"] = group
        op["bindings"] = {"kafka": binding}
    return op


def build_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic, as a plain dict (what docs/asyncapi.yaml holds)."""
    from faststream.specification import AsyncAPI

    table = flows()
    _check_catalog(table)
    real = service_brokers()
    declared = {party: subscriptions(broker) for party, broker in real.items()}
    sends = {party: publications(broker) for party, broker in real.items()}
    wrong = [*check_subscriptions(table, declared), *check_publications(table, sends)]
    if wrong:
        raise SystemExit(
            "the AXIS services' subscribers or publishers and services/cli/axis_cli/apidocs_catalog.py disagree:\n  "
            + "\n  ".join(wrong)
        )
    spec = AsyncAPI(
        *description_brokers(table),
        *real.values(),
        title="AXIS Loop events",
        version="1",
        description=DELIVERY,
        schema_version="3.0.0",
    ).to_specification()
    raw = json.loads(spec.to_json())
    raw_messages = raw["components"]["messages"]

    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, model in EVENT_TYPES.items():
        channels[model.TOPIC] = _channel(name, model, table[name])
        # the payload schema FastStream derived from the model (one per model, shared by every operation)
        made = [m for m in raw_messages.values() if m["payload"].get("$ref") == f"#/components/schemas/{name}"]
        if not made:
            raise SystemExit(f"FastStream described no message for {name}")
        messages[name] = _message(name, model, table[name], made[0]["payload"]["$ref"], made[0].get("correlationId"))
    order = [
        _op_id(s.party, a, n)
        for n in EVENT_TYPES
        for a, sides in (("send", table[n].send), ("receive", table[n].receive))
        for s in sides
    ]
    ops = {}
    for key, op in raw["operations"].items():
        raw_channel = raw["channels"][unquote(op["channel"]["$ref"].split("/")[-1])]
        if op["action"] == "receive" and key.split(".")[0] in SERVICES:  # a service's own subscriber
            _check_payload(key, raw, raw_channel)
            key = _op_id(key.split(".")[0], "receive", TOPIC_EVENTS[raw_channel["address"]].__name__)
        else:
            key = key.removesuffix("Subscribe").removesuffix("Publish")
        ops[key] = _operation(key, op, raw_channel, table)
    operations = dict(sorted(ops.items(), key=lambda item: order.index(item[0])))
    # the services' batch payloads (lists of the models) are FastStream's wrappers; the messages name the models
    schemas = {k: v for k, v in raw["components"]["schemas"].items() if not k.endswith(":Message:Payload")}
    return {
        "asyncapi": raw["asyncapi"],
        "info": raw["info"],
        "defaultContentType": raw.get("defaultContentType", "application/json"),
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The Kafka-compatible broker: Tansu in the embedded stack, Apache Kafka in production.",
                "variables": {
                    "bootstrap": {
                        "default": BOOTSTRAP,
                        "description": "AXIS_KAFKA__BOOTSTRAP_SERVERS, in <data-dir>/stack.env for the embedded "
                        "stack (its port is chosen at the first `make up`; `make status` shows it).",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            # sorted: FastStream's order follows sets of brokers' subscribers, which differs between processes
            "schemas": dict(sorted({**schemas, HEADERS_SCHEMA: _headers_schema()}.items())),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so that descriptions read as text."""


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def asyncapi_text() -> str:
    """docs/asyncapi.yaml as it should be."""
    body = yaml.dump(build_asyncapi(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return HEADER + body


# ------------------------------------------------------------------------------------------------ files
def render_all() -> dict[str, str]:
    """Every generated file's text, by path relative to the repository root."""
    return {ASYNCAPI_PATH: asyncapi_text(), **openapi_texts()}


def stale(root: Path, wanted: dict[str, str] | None = None) -> list[str]:
    """Paths that differ from what the code generates, are missing, or are OpenAPI files nothing generates."""
    wanted = wanted if wanted is not None else render_all()
    out = [p for p, text in wanted.items() if not (root / p).is_file() or (root / p).read_text() != text]
    extra = sorted(
        str(p.relative_to(root)) for p in (root / OPENAPI_DIR).glob("*.json") if str(p.relative_to(root)) not in wanted
    )
    return out + extra


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m axis_cli.apidocs [--check] [--root DIR]``."""
    p = argparse.ArgumentParser(prog="python -m axis_cli.apidocs", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is stale")
    p.add_argument("--root", type=Path, default=Path("."), help="repository root (default: the current directory)")
    a = p.parse_args(argv)
    wanted = render_all()
    old = stale(a.root, wanted)
    if a.check:
        for path in old:
            print(f"stale: {path} (run `make docs`)", file=sys.stderr)
        return 1 if old else 0
    (a.root / OPENAPI_DIR).mkdir(parents=True, exist_ok=True)
    for path in old:
        target = a.root / path
        if path in wanted:
            target.write_text(wanted[path])
        else:
            target.unlink()
    doc = yaml.safe_load(wanted[ASYNCAPI_PATH])
    print(
        f"{ASYNCAPI_PATH}: {len(doc['channels'])} channels, {len(doc['operations'])} operations; "
        f"{len(wanted) - 1} OpenAPI files in {OPENAPI_DIR}; {len(old)} file(s) changed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
