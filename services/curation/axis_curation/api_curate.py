"""Login, accounts, the curator queue, labels and image bytes."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from axis_adapters.objectstore import ForbiddenBucket, ObjectMissing, ObjectStoreUnavailable, parse_uri
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from axis_curation.auth import (
    SESSION_COOKIE,
    Account,
    AccountExists,
    AuthError,
    InvalidCredentials,
    current_account,
    require_role,
    token_from_request,
)
from axis_curation.colours import class_colour
from axis_curation.consensus import Vote, decide
from axis_curation.context import Services
from axis_curation.curation_repo import (
    ImageRef,
    ItemClosed,
    ItemDetail,
    ItemNotFound,
    NoLabelOfYours,
    QueueFilter,
    QueueItem,
)

router = APIRouter(prefix="/v1")
Curator = Annotated[Account, Depends(require_role("curator"))]
Admin = Annotated[Account, Depends(require_role("admin"))]
Reader = Annotated[Account, Depends(require_role("scientist"))]  # scientists, curators and admins
QueueKind = Literal[
    "ml_crystal_human_other", "ml_other_human_crystal", "near_threshold", "modes_disagree", "unreliable_user"
]
QueueSort = Literal["priority", "probability", "probability_desc", "oldest", "others_first"]
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1, description="queue item (discrepancy) id")]


def services_of(request: Request) -> Services:
    """The app's Services."""
    return request.app.state.services  # type: ignore[no-any-return]


class Credentials(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResult(BaseModel):
    """Who is logged in, until when."""

    username: str
    role: str
    expires_at: datetime


class TokenResult(LoginResult):
    """A bearer token for API clients."""

    access_token: str
    token_type: str = "bearer"


class NewAccount(BaseModel):
    """An account an admin creates."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    role: Literal["curator", "admin", "lims", "scientist"] = "curator"


class LabelIn(BaseModel):
    """A curator's verdict on a queued item."""

    label: Literal["crystal", "other", "uncertain", "unusable"]
    comment: str = Field(default="", max_length=2000)


class QueuePage(BaseModel):
    """Open items for the calling curator: all of them (``count``) and those the filters keep (``matching``)."""

    count: int
    matching: int
    consensus_min: int
    items: list[QueueItem]
    plates: list[str] = Field(default_factory=list, description="plates with open items for the caller")


class ModeScoreView(BaseModel):
    """One mode's latest score of the item's inspection, with the label at that model's threshold."""

    mode: str
    probability: float
    threshold: float
    label: Literal["crystal", "other"]
    model_name: str
    model_version: str


class InspectionRef(BaseModel):
    """One inspection of the item's drop (the time series strip)."""

    inspection_id: str
    imaged_at: datetime
    fused_probability: float | None
    label: str | None
    images: list[ImageRef]
    current: bool


class ItemView(ItemDetail):
    """An item as a curator sees it: plus the user score's colour, the caller's own latest label, the per-mode
    scores and the drop's inspections."""

    human_colour: str
    my_label: str | None
    mode_scores: list[ModeScoreView]
    history: list[InspectionRef]


class LabelResult(BaseModel):
    """The item after the label: status and resolved label under the consensus rule."""

    item: QueueItem
    label: str
    remaining: int


def _login(request: Request, body: Credentials, kind: Literal["session", "api"]) -> tuple[Account, str, datetime]:
    try:
        return services_of(request).authenticator.login(body.username, body.password, kind)
    except InvalidCredentials:
        raise HTTPException(status_code=401, detail="unknown user or wrong password") from None


@router.post("/login", response_model=LoginResult, tags=["auth"])
def login(body: Credentials, request: Request, response: Response) -> LoginResult:
    """Browser login: sets an HttpOnly, SameSite=Strict session cookie."""
    account, token, expires = _login(request, body, "session")
    max_age = int((expires - datetime.now(expires.tzinfo)).total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=services_of(request).options.cookie_secure,
        path="/",
    )
    return LoginResult(username=account.username, role=account.role, expires_at=expires)


@router.post("/tokens", response_model=TokenResult, tags=["auth"])
def issue_token(body: Credentials, request: Request) -> TokenResult:
    """API-client login: returns a bearer token (Authorization: Bearer …)."""
    account, token, expires = _login(request, body, "api")
    return TokenResult(username=account.username, role=account.role, expires_at=expires, access_token=token)


@router.post("/logout", status_code=204, tags=["auth"])
def logout(request: Request, response: Response) -> Response:
    """Revoke the caller's session or token and clear the cookie."""
    token = token_from_request(request)
    if token:
        services_of(request).authenticator.logout(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", tags=["auth"])
def me(account: Annotated[Account, Depends(current_account)]) -> dict[str, str]:
    """The logged-in account."""
    return {"username": account.username, "role": account.role}


@router.post("/accounts", status_code=201, tags=["auth"])
def create_account(body: NewAccount, request: Request, admin: Admin) -> dict[str, str]:
    """Admin: create an account (password rules apply; the password is hashed with bcrypt)."""
    try:
        account = services_of(request).authenticator.create_account(body.username, body.password, body.role)
    except AccountExists as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except AuthError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"username": account.username, "role": account.role, "created_by": admin.username}


@router.get("/queue", response_model=QueuePage, tags=["curation"])
def queue(
    request: Request,
    account: Curator,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    plate: Annotated[str | None, Query(max_length=64, description="only this plate")] = None,
    kind: Annotated[QueueKind | None, Query(description="kind of disagreement or why an agreement is here")] = None,
    min_p: Annotated[float | None, Query(ge=0, le=1, description="ML probability at least")] = None,
    max_p: Annotated[float | None, Query(ge=0, le=1, description="ML probability at most")] = None,
    others: Annotated[bool, Query(description="only items another curator labelled")] = False,
    sort: QueueSort = "priority",
    skip: Annotated[list[int] | None, Query(max_length=500, description="items skipped in this session")] = None,
) -> QueuePage:
    """Open items the caller has not labelled yet, filtered and sorted (default: most valuable first)."""
    svc = services_of(request)
    filters = QueueFilter(
        plate=plate or None,
        kind=kind,
        min_probability=min_p,
        max_probability=max_p,
        others_labelled=others,
        sort=sort,
        exclude=tuple(i for i in (skip or []) if 0 < i < 2**63),
    )
    count, matching, items = svc.repo.queue_page(account.username, limit or svc.options.queue_page, filters)
    return QueuePage(
        count=count,
        matching=matching,
        consensus_min=svc.options.consensus_min,
        items=items,
        plates=svc.repo.queue_plates(account.username),
    )


def _colour(svc: Services, raw_class: str) -> str:
    return class_colour(svc.options.score_scheme, raw_class)


@router.get("/items/{item_id}", response_model=ItemView, tags=["curation"])
def get_item(item_id: ItemId, request: Request, account: Curator) -> ItemView:
    """One queued item: images (visible and UV), ML probability and model version, the user's score, labels."""
    svc = services_of(request)
    try:
        item = svc.repo.item(item_id)
    except ItemNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    mine = [lab.label for lab in item.labels if lab.curator == account.username]
    colour = _colour(svc, item.human_class)
    modes = [
        ModeScoreView(**m, label="crystal" if m["probability"] >= m["threshold"] else "other")
        for m in svc.repo.mode_scores(item.inspection_id)
    ]
    history = [
        InspectionRef(**h, current=h["inspection_id"] == item.inspection_id)
        for h in svc.repo.drop_history(item.plate_barcode, item.well, item.drop)
    ]
    return ItemView(
        **item.model_dump(),
        human_colour=colour,
        my_label=mine[-1] if mine else None,
        mode_scores=modes,
        history=history,
    )


def _decider(svc: Services) -> Callable[[list[tuple[str, str, datetime]]], tuple[str, str | None]]:
    rule = svc.rule

    def decider(votes: list[tuple[str, str, datetime]]) -> tuple[str, str | None]:
        d = decide([Vote(c, lab, at) for c, lab, at in votes], rule)  # type: ignore[arg-type]
        return d.status, d.resolved_label

    return decider


@router.post("/items/{item_id}/labels", status_code=201, response_model=LabelResult, tags=["curation"])
def add_label(item_id: ItemId, body: LabelIn, request: Request, account: Curator) -> LabelResult:
    """Store the caller's label (who and when) and apply the consensus rule."""
    svc = services_of(request)
    try:
        item = svc.repo.add_label(item_id, account.username, body.label, body.comment.strip(), _decider(svc))
    except ItemNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except ItemClosed as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    remaining, _ = svc.repo.queue(account.username, 1)
    return LabelResult(item=item, label=body.label, remaining=remaining)


@router.delete("/items/{item_id}/labels/mine", response_model=LabelResult, tags=["curation"])
def undo_label(item_id: ItemId, request: Request, account: Curator) -> LabelResult:
    """Take back the caller's latest label of an item (undo); the consensus rule is applied again."""
    svc = services_of(request)
    try:
        item, removed = svc.repo.remove_last_label(item_id, account.username, _decider(svc))
    except (ItemNotFound, NoLabelOfYours) as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except ItemClosed as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    remaining, _ = svc.repo.queue(account.username, 1)
    return LabelResult(item=item, label=removed, remaining=remaining)


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def _browser_image(data: bytes, max_side: int | None) -> tuple[bytes, str]:
    """Bytes a browser can show: PNG/JPEG/GIF as stored, anything else (TIFF, …) converted to PNG."""
    media = next((m for sig, m in _SIGNATURES if data.startswith(sig)), None)
    if media is not None and max_side is None:
        return data, media
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            img: Image.Image = opened
            if max_side is not None:
                img.thumbnail((max_side, max_side))
            out = io.BytesIO()
            if img.mode not in ("RGB", "RGBA", "L"):
                img = img.convert("RGB")
            img.save(out, format="PNG" if media != "image/jpeg" else "JPEG", quality=90)
            return out.getvalue(), media if media == "image/jpeg" else "image/png"
    except (UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(status_code=415, detail="the stored object is not an image a browser can show") from None


@router.get("/images", tags=["curation"])
def get_image(
    request: Request,
    account: Reader,
    uri: Annotated[str, Query(min_length=6, max_length=1024, description="s3://bucket/key of the image")],
    max_side: Annotated[int | None, Query(ge=16, le=4096, description="downscale to at most this size")] = None,
) -> Response:
    """Image bytes through the service (only from the allowed buckets)."""
    svc = services_of(request)
    try:
        parse_uri(uri, svc.allowed_buckets)
    except ForbiddenBucket as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"uri: {exc}") from None
    try:
        data = svc.store.get_bytes(uri, max_bytes=svc.options.max_image_bytes)
    except ObjectMissing:
        raise HTTPException(status_code=404, detail=f"no image at {uri}") from None
    except ObjectStoreUnavailable:
        raise HTTPException(status_code=503, detail="the object store is unreachable; try again") from None
    except ValueError as exc:
        raise HTTPException(status_code=413, detail=str(exc)) from None
    body, media = _browser_image(data, max_side)
    return Response(content=body, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
