"""In-memory AccountStore for unit tests (the port is axis_curation.auth.AccountStore)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from axis_curation.auth import Account, AccountExists, Role, TokenKind


@dataclass
class InMemoryAccountStore:
    """Fake AccountStore for unit tests."""

    accounts: dict[str, tuple[Account, str]] = field(default_factory=dict)
    tokens: dict[str, tuple[str, TokenKind, datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get_account(self, username: str) -> tuple[Account, str] | None:
        return self.accounts.get(username)

    def create_account(self, username: str, password_hash: str, role: Role) -> None:
        with self._lock:
            if username in self.accounts:
                raise AccountExists(f"account {username!r} already exists")
            self.accounts[username] = (Account(username, role), password_hash)

    def count_accounts(self) -> int:
        return len(self.accounts)

    def save_token(self, digest: str, username: str, kind: TokenKind, expires_at: datetime) -> None:
        self.tokens[digest] = (username, kind, expires_at)

    def account_for_token(self, digest: str, now: datetime) -> Account | None:
        entry = self.tokens.get(digest)
        if entry is None or entry[2] <= now or entry[0] not in self.accounts:
            return None
        return self.accounts[entry[0]][0]

    def delete_token(self, digest: str) -> None:
        self.tokens.pop(digest, None)
