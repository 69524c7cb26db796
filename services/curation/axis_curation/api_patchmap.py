"""``GET /v1/patch-map``: where the model sees crystals in one image, for the overlay of the curator and well views.

The map is computed by the inference side (``python -m axis_inference.patchmaps``, the champion of each mode);
this service only checks the caller's role (scientist, curator or admin) and the bucket and passes the map on.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from axis_adapters.objectstore import ForbiddenBucket, parse_uri
from fastapi import APIRouter, HTTPException, Query, Request

from axis_curation.api_curate import Reader, services_of

router = APIRouter(prefix="/v1")


class PatchMapUnavailable(RuntimeError):
    """The map server cannot answer (not configured, down, or no model yet); the message says which."""


class PatchMapSource(Protocol):
    """Where maps come from (the inference map server, or a fake in tests)."""

    def patch_map(self, uri: str, mode: str) -> dict[str, Any]:
        """The map of one stored image under the mode's champion; PatchMapUnavailable / LookupError otherwise."""
        ...


class HttpPatchMapSource:
    """Asks ``python -m axis_inference.patchmaps`` over HTTP (bearer token)."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def patch_map(self, uri: str, mode: str) -> dict[str, Any]:
        """GET /v1/patch-map on the map server."""
        import httpx

        try:
            r = self._client.get("/v1/patch-map", params={"uri": uri, "mode": mode})
        except httpx.HTTPError as exc:
            raise PatchMapUnavailable(f"the patch-map server is unreachable ({type(exc).__name__})") from None
        if r.status_code == 404:
            raise LookupError(r.text.strip())
        if r.status_code != 200:
            raise PatchMapUnavailable(f"the patch-map server answered {r.status_code}: {r.text.strip()[:200]}")
        body: dict[str, Any] = r.json()
        return body

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


@router.get("/patch-map", tags=["curation"])
def get_patch_map(
    request: Request,
    account: Reader,
    uri: Annotated[str, Query(min_length=6, max_length=1024, description="s3://bucket/key of the image")],
    mode: Annotated[str, Query(pattern="^(visible|uv)$", description="imaging mode of the image")],
) -> dict[str, Any]:
    """Per-patch contributions to the crystal logit (rows x cols, top-left first), with the probability."""
    svc = services_of(request)
    try:
        parse_uri(uri, svc.allowed_buckets)
    except ForbiddenBucket as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"uri: {exc}") from None
    source: PatchMapSource | None = getattr(svc, "patchmaps", None)
    if source is None:
        raise HTTPException(status_code=404, detail="patch maps are not served here: set AXIS_CURATION__PATCHMAP_URL")
    try:
        return source.patch_map(uri, mode)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except PatchMapUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
