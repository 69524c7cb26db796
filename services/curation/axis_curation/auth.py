"""Accounts, bcrypt password hashes, session cookies / bearer tokens and FastAPI role dependencies.

Reusable by any HTTP service: build an ``Authenticator`` over an ``AccountStore`` (PostgreSQL or the
in-memory fake), put it on ``app.state.authenticator`` and guard routes with ``Depends(require_role(...))``.
Tokens are random (256 bits); only their SHA-256 is stored, so a leaked table does not leak sessions.
Passwords are never logged and never stored in clear.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, cast

import bcrypt
from fastapi import HTTPException, Request

Role = Literal["curator", "admin", "lims", "scientist"]
ROLES: tuple[Role, ...] = ("curator", "admin", "lims", "scientist")
TokenKind = Literal["session", "api"]
SESSION_COOKIE = "axis_session"
MIN_PASSWORD_LENGTH = 10
_MAX_PASSWORD_BYTES = 72  # bcrypt ignores (bcrypt 5 rejects) anything longer
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
# roles that also pass a check for another role: an admin may do what a curator does, and a curator what a
# scientist does (read plates, wells, scores, history and datasets); a scientist only reads
_IMPLIES: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "curator", "scientist"}),
    "curator": frozenset({"curator", "scientist"}),
}
ROLE_PURPOSE: dict[str, str] = {
    "scientist": "reads plates, wells, their scores and history, and datasets",
    "curator": "labels the curator queue (and reads what a scientist reads)",
    "admin": "creates accounts and exports datasets (and does what a curator does)",
    "lims": "the LIMS gateway's machine account (no pages)",
}


class AuthError(ValueError):
    """Base of account errors a user can fix (message says what to do)."""


class InvalidCredentials(AuthError):
    """Unknown user or wrong password (deliberately not saying which)."""


class AccountExists(AuthError):
    """An account with this name already exists."""


class WeakPassword(AuthError):
    """The password does not meet the rules."""


@dataclass(frozen=True)
class Account:
    """A logged-in person or client."""

    username: str
    role: Role

    def has_role(self, *roles: str) -> bool:
        """True when this account's role is, or implies, one of ``roles``."""
        granted = _IMPLIES.get(self.role, frozenset({self.role}))
        return any(r in granted for r in roles)


def hash_password(password: str, *, rounds: int = 12) -> str:
    """bcrypt hash (salted, ``rounds`` log2 cost) of a password."""
    check_password_rules(password)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches the bcrypt ``hashed``; False for malformed hashes or overlong input."""
    raw = password.encode()
    if len(raw) > _MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(raw, hashed.encode())
    except ValueError:
        return False


def check_password_rules(password: str) -> None:
    """Raise WeakPassword saying what is wrong with a new password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > _MAX_PASSWORD_BYTES:
        raise WeakPassword(f"the password must be at most {_MAX_PASSWORD_BYTES} bytes (bcrypt limit)")


def check_username(username: str) -> str:
    """The username if valid, else AuthError saying which characters are allowed."""
    if not _USERNAME.match(username):
        raise AuthError(
            "a username is 1-64 characters: letters, digits, '_', '.', '@', '-' (starting with a letter or digit)"
        )
    return username


def token_digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password() -> str:
    """A random password for a bootstrap account (about 128 bits)."""
    return secrets.token_urlsafe(16)


class AccountStore(Protocol):
    """Where accounts and token digests live."""

    def get_account(self, username: str) -> tuple[Account, str] | None: ...
    def create_account(self, username: str, password_hash: str, role: Role) -> None: ...
    def count_accounts(self) -> int: ...
    def save_token(self, digest: str, username: str, kind: TokenKind, expires_at: datetime) -> None: ...
    def account_for_token(self, digest: str, now: datetime) -> Account | None: ...
    def delete_token(self, digest: str) -> None: ...


class PostgresAccountStore:
    """AccountStore over the ``accounts`` and ``auth_sessions`` tables (a psycopg ConnectionPool)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def get_account(self, username: str) -> tuple[Account, str] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT username, role, password_hash FROM accounts WHERE username = %s", (username,)
            ).fetchone()
        if row is None:
            return None
        return Account(row[0], cast(Role, row[1])), row[2]

    def create_account(self, username: str, password_hash: str, role: Role) -> None:
        with self._pool.connection() as conn:
            cur = conn.execute(
                "INSERT INTO accounts (username, password_hash, role) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (username, password_hash, role),
            )
            if cur.rowcount == 0:
                raise AccountExists(f"account {username!r} already exists")

    def count_accounts(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM accounts").fetchone()
        return int(row[0]) if row else 0

    def save_token(self, digest: str, username: str, kind: TokenKind, expires_at: datetime) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO auth_sessions (token_sha256, username, kind, expires_at) VALUES (%s, %s, %s, %s)",
                (digest, username, kind, expires_at),
            )
            # opportunistic clean-up of this user's expired tokens
            conn.execute("DELETE FROM auth_sessions WHERE username = %s AND expires_at < now()", (username,))

    def account_for_token(self, digest: str, now: datetime) -> Account | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT a.username, a.role FROM auth_sessions s JOIN accounts a ON a.username = s.username "
                "WHERE s.token_sha256 = %s AND s.expires_at > %s",
                (digest, now),
            ).fetchone()
        return Account(row[0], cast(Role, row[1])) if row else None

    def delete_token(self, digest: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM auth_sessions WHERE token_sha256 = %s", (digest,))


# a real hash to compare against when the user does not exist, so both paths cost one bcrypt check
_DUMMY_HASH = bcrypt.hashpw(b"no-such-user-password", bcrypt.gensalt(rounds=4)).decode()


class Authenticator:
    """Creates accounts, checks passwords, issues and resolves tokens."""

    def __init__(
        self,
        store: AccountStore,
        *,
        session_ttl: timedelta = timedelta(hours=12),
        api_token_ttl: timedelta = timedelta(days=7),
        bcrypt_rounds: int = 12,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self._ttl: dict[TokenKind, timedelta] = {"session": session_ttl, "api": api_token_ttl}
        self._rounds = bcrypt_rounds
        self._clock = clock

    def create_account(self, username: str, password: str, role: str) -> Account:
        """Store a new account with a bcrypt hash; AuthError subclasses say what was wrong."""
        check_username(username)
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        hashed = hash_password(password, rounds=self._rounds)
        self.store.create_account(username, hashed, cast(Role, role))
        return Account(username, cast(Role, role))

    def authenticate(self, username: str, password: str) -> Account:
        """The account when the password matches, else InvalidCredentials."""
        # a name no account can have (e.g. a NUL, which PostgreSQL cannot even compare) is simply unknown
        found = self.store.get_account(username) if _USERNAME.match(username) else None
        if found is None:
            verify_password(password, _DUMMY_HASH)
            raise InvalidCredentials("unknown user or wrong password")
        account, hashed = found
        if not verify_password(password, hashed):
            raise InvalidCredentials("unknown user or wrong password")
        return account

    def login(self, username: str, password: str, kind: TokenKind = "session") -> tuple[Account, str, datetime]:
        """Check the password and issue a token: (account, token, expires_at)."""
        account = self.authenticate(username, password)
        token = secrets.token_urlsafe(32)
        expires = self._clock() + self._ttl[kind]
        self.store.save_token(token_digest(token), account.username, kind, expires)
        return account, token, expires

    def resolve(self, token: str) -> Account | None:
        """The account behind a live token, or None."""
        if not token or len(token) > 256:
            return None
        return self.store.account_for_token(token_digest(token), self._clock())

    def logout(self, token: str) -> None:
        """Revoke a token (no error when it is unknown)."""
        if token:
            self.store.delete_token(token_digest(token))

    def bootstrap_admin(self, env: str, username: str = "admin") -> str | None:
        """Dev mode only: create ``username`` as admin with a generated password when no account exists.

        Returns the generated password (to print once) or None when nothing was created.
        """
        if env != "dev" or self.store.count_accounts() > 0:
            return None
        password = generate_password()
        try:
            self.create_account(username, password, "admin")
        except AccountExists:
            return None
        return password


def token_from_request(request: Any, cookie_name: str = SESSION_COOKIE) -> str | None:
    """Bearer token from the Authorization header, else the session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return cast(str, value.strip())
    cookie = request.cookies.get(cookie_name)
    return cast(str, cookie) if cookie else None


def current_account(request: Request) -> Account:
    """FastAPI dependency: the caller's account (401 without a valid token).

    Needs ``request.app.state.authenticator`` (an Authenticator).
    """
    authenticator: Authenticator = request.app.state.authenticator
    token = token_from_request(request)
    account = authenticator.resolve(token) if token else None
    if account is None:
        raise HTTPException(
            status_code=401,
            detail="not logged in: POST /v1/login (browser) or /v1/tokens (API client) first",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.account = account
    return account


def require_role(*roles: str) -> Callable[..., Account]:
    """FastAPI dependency factory: the caller's account if it has (or implies) one of ``roles``, else 403."""

    def dependency(request: Request) -> Account:
        account = current_account(request)
        if not account.has_role(*roles):
            raise HTTPException(
                status_code=403,
                detail=f"this needs the role {' or '.join(roles)}; you are {account.role} "
                "(ask an admin of the curation service for an account with that role)",
            )
        return account

    return dependency
