"""Accounts and tokens: bcrypt hashes, login, roles, revocation, dev-mode bootstrap admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from axis_curation.auth import (
    Account,
    AccountExists,
    Authenticator,
    InvalidCredentials,
    WeakPassword,
    hash_password,
    verify_password,
)
from fakes import InMemoryAccountStore

pytestmark = pytest.mark.unit


def _auth(clock: list[datetime] | None = None) -> Authenticator:
    now = clock or [datetime(2026, 1, 1, tzinfo=UTC)]
    return Authenticator(InMemoryAccountStore(), bcrypt_rounds=4, session_ttl=timedelta(hours=1), clock=lambda: now[0])


def test_password_is_stored_as_a_salted_bcrypt_hash() -> None:
    h1, h2 = hash_password("correct horse", rounds=4), hash_password("correct horse", rounds=4)
    assert h1.startswith("$2b$04$") and "correct horse" not in h1
    assert h1 != h2, "salted: the same password hashes differently"
    assert verify_password("correct horse", h1) and not verify_password("correct horsf", h1)
    assert not verify_password("anything", "not-a-bcrypt-hash")


def test_short_and_overlong_passwords_are_refused_with_the_rule() -> None:
    with pytest.raises(WeakPassword, match="at least 10"):
        hash_password("short")
    with pytest.raises(WeakPassword, match="72 bytes"):
        hash_password("x" * 80)


def test_login_issues_a_token_that_resolves_until_it_expires_or_is_revoked() -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    auth = _auth(clock)
    auth.create_account("alice", "alice-password-1", "curator")
    account, token, expires = auth.login("alice", "alice-password-1")
    assert account == Account("alice", "curator") and expires == clock[0] + timedelta(hours=1)
    assert auth.resolve(token) == account
    assert token not in auth.store.tokens, "only the token's digest is stored"  # type: ignore[attr-defined]
    auth.logout(token)
    assert auth.resolve(token) is None
    _, token2, _ = auth.login("alice", "alice-password-1")
    clock[0] += timedelta(hours=2)
    assert auth.resolve(token2) is None


def test_wrong_password_and_unknown_user_look_the_same() -> None:
    auth = _auth()
    auth.create_account("bob", "bob-password-12", "admin")
    for user, pw in (("bob", "wrong-password"), ("nobody", "bob-password-12")):
        with pytest.raises(InvalidCredentials, match="unknown user or wrong password"):
            auth.login(user, pw)
    with pytest.raises(AccountExists):
        auth.create_account("bob", "another-password", "curator")


def test_admin_implies_curator_but_not_the_other_way() -> None:
    assert Account("a", "admin").has_role("curator") and Account("a", "admin").has_role("admin")
    assert Account("c", "curator").has_role("curator") and not Account("c", "curator").has_role("admin")
    assert not Account("l", "lims").has_role("curator")


def test_bootstrap_admin_only_in_dev_and_only_on_an_empty_store() -> None:
    auth = _auth()
    assert auth.bootstrap_admin("production") is None and auth.bootstrap_admin("test") is None
    password = auth.bootstrap_admin("dev")
    assert password and len(password) >= 16
    assert auth.login("admin", password)[0].role == "admin"
    assert auth.bootstrap_admin("dev") is None, "never a second bootstrap once accounts exist"
