"""Failed sign-ins lock an account (from anywhere) and, separately, an address.

Counted over a sliding window and kept in ``revocations.sqlite3``, so a restart
forgets nothing.  An account is locked while it has ``account_limit`` failures
in the window, from any address; an address while ``address_limit`` failures
came from it, whatever the accounts.  One user's mistakes therefore never lock
a colleague out of a shared address (a proxy, a station's NAT) below the
address limit.  An attempt counts as a failure from the moment it starts, and
stops counting when it succeeds: parallel guesses cannot slip past the limit
while their hashes are being checked.

>>> from console.revocations import Revocations
>>> lockout = SignInLockout(Revocations(None).db, clock=lambda: 0.0)
>>> for _ in range(5):
...     _ = lockout.attempt(account_key("lena"), "10.0.0.1")
>>> lockout.locked(account_key("lena"), "10.0.0.2"), lockout.locked(account_key("ana"), "10.0.0.1")
('account', None)
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LockoutPolicy:
    account_limit: int = 5
    address_limit: int = 20
    window_s: float = 15 * 60.0


def account_key(username: str) -> str:
    """The key an account's failures are kept under: a digest, never the name typed."""
    return hashlib.sha256(username.encode()).hexdigest()


class SignInLockout:
    def __init__(self, db: sqlite3.Connection, policy: LockoutPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.policy, self._clock = db, policy or LockoutPolicy(), clock

    def locked(self, account: str, address: str) -> Literal["account", "address"] | None:
        """What is locked, the account first, or None when this attempt may go ahead."""
        since = self._clock() - self.policy.window_s
        if self._count("account", account, since) >= self.policy.account_limit:
            return "account"
        if self._count("address", address, since) >= self.policy.address_limit:
            return "address"
        return None

    def attempt(self, account: str, address: str) -> int:
        """Count an attempt as failed until ``succeeded`` says otherwise; its id."""
        now = self._clock()
        self.db.execute("DELETE FROM failures WHERE at <= ?", (now - self.policy.window_s,))
        cur = self.db.execute("INSERT INTO failures (account, address, at) VALUES (?, ?, ?)",
                              (account, address, now))
        return int(cur.lastrowid or 0)

    def succeeded(self, account: str, attempt: int) -> None:
        """The right password: the account's failures are forgotten, and this attempt.
        The address keeps its other failures (a valid account must not reset them)."""
        self.db.execute("DELETE FROM failures WHERE account = ? OR id = ?", (account, attempt))

    def _count(self, column: str, value: str, since: float) -> int:
        row = self.db.execute(f"SELECT COUNT(*) FROM failures WHERE {column} = ? AND at > ?",
                              (value, since)).fetchone()
        return int(row[0])
