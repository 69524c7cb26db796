"""The OpenAPI documents of every HTTP API (docs/openapi/<api>.json), from each FastAPI app's own ``openapi()``,
built without connecting to anything. Written and checked by ``axis_cli.apidocs`` (``make docs``)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

OPENAPI_DIR = "docs/openapi"


def _curation_app() -> Any:

    from axis_curation.app import create_app

    # the routes read their services per request; building the app needs none of them
    return create_app(cast(Any, SimpleNamespace(authenticator=None)), manage_lifecycle=False)


def _gateway_app() -> Any:
    from axis_contracts import DEFAULT_SCHEME
    from axis_discrepancy.lims_gateway import GatewayDeps, create_app
    from pydantic import SecretStr

    none = cast(Any, None)
    return create_app(GatewayDeps(none, none, none, DEFAULT_SCHEME, SecretStr("not-used-by-the-schema")))


async def _never(*_: Any) -> Any:
    raise NotImplementedError


def _health_app() -> Any:
    from axis_adapters.health_http import health_app

    return health_app(_never, _never)  # as axis_adapters.lifecycle.start_health_server builds it


def _inference_app() -> Any:
    from axis_adapters.health_http import health_app

    # the options axis_inference.service.InferenceService gives its HealthServer
    return health_app(
        _never, _never, metrics_json=_never, require_token=True, token_setting="AXIS_INFERENCE__METRICS_TOKEN"
    )


def _patch_map_app() -> Any:
    from axis_adapters.health_http import health_app

    # the options and route of axis_inference.patchmaps.PatchMapRoutes.server (importing it loads torch)
    return health_app(
        _never,
        None,
        require_token=True,
        token_setting="AXIS_INFERENCE__METRICS_TOKEN",
        routes={"/v1/patch-map": _never},
    )


OPENAPI_APPS: dict[str, tuple[str, Any]] = {
    "curation": ("curation service: curator queue, plate maps, datasets, accounts", _curation_app),
    "lims-gateway": ("discrepancy service's LIMS gateway: user scores over HTTP, statistics", _gateway_app),
    "service-health": ("/health and /metrics of the discrepancy and ingest services", _health_app),
    "inference-health": ("/health and /metrics (bearer token) of the inference service", _inference_app),
    "patch-maps": ("the inference side's patch-map server: /health and /v1/patch-map (bearer token)", _patch_map_app),
}


def openapi_texts() -> dict[str, str]:
    """docs/openapi/<name>.json as they should be, by relative path."""
    out = {}
    for name, (_, factory) in OPENAPI_APPS.items():
        doc = factory().openapi()
        out[f"{OPENAPI_DIR}/{name}.json"] = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return out
