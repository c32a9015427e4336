"""Console users: scrypt password hashes (checked off the event loop) and the users file.

>>> stored = hash_password("correct horse", n=2**10)
>>> verify_password("correct horse", stored), verify_password("wrong", stored)
(True, False)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from accesswatch.errors import AccessWatchError

# What each role may do.  ``view``: read alerts and evidence; ``triage``: record
# decisions; ``export``: download false positives for allow-lists and retraining.
ROLES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"view"}),
    "analyst": frozenset({"view", "triage"}),
    "lead": frozenset({"view", "triage", "export"}),
}
SCHEME = "scrypt"
# OWASP's floor for scrypt: N=2^17, r=8, p=1 (128 MiB); 2^15 keeps a login under
# 0.1 s on a small machine and is still far beyond a GPU's cheap guesses.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**15, 8, 1
_MAXMEM = 256 * 1024 * 1024


def _lower_priority() -> None:
    """Hashing threads yield the CPU to the event loop (Linux: nice is per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# scrypt releases the GIL: threads check passwords while the loop serves.  One core
# is left to the loop and the threads run at a lower priority, so a burst of sign-ins
# queues rather than starving it; each check holds 32 MiB (N=2^15, r=8): 4 at most.
_HASHING = ThreadPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 2) - 1)),
                              thread_name_prefix="aw-scrypt", initializer=_lower_priority)


class ConsoleConfigError(AccessWatchError):
    """The console's users file is wrong: ``path: what``."""


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R,
                  p: int = DEFAULT_P) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), with a fresh 16-byte salt."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                            dklen=32)
    return "$".join([SCHEME, str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        want = _unb64(digest)
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=_MAXMEM, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def is_password_hash(value: str) -> bool:
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == SCHEME and all(parts)


@dataclass(frozen=True)
class User:
    username: str
    role: str
    password_hash: str
    staff_id: str | None = None  # their id in the staff directory: the console audits them

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES[self.role]

    def may(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class Users:
    by_name: dict[str, User]
    session_minutes: float = 480.0

    def authenticate(self, username: str, password: str) -> User | None:
        user = self.by_name.get(username)
        # Hash even for an unknown name, so timing does not say which names exist.
        ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
        return user if user is not None and ok else None

    def get(self, username: str) -> User | None:
        return self.by_name.get(username)

    def replace(self, new: Users) -> None:
        """Take ``new``'s users in place, so every holder of this object sees them
        (``session_minutes`` is read at start only)."""
        self.by_name.clear()
        self.by_name.update(new.by_name)


async def authenticate(users: Users, username: str, password: str) -> User | None:
    """``users.authenticate`` in a hashing thread: a sign-in never holds the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_HASHING, users.authenticate, username, password)


def load_users(path: Path) -> Users:
    """Read the users file (YAML); a plain-text password or unknown role is refused.

    ```yaml
    session_minutes: 480
    users:
      alice: {role: lead, password: "scrypt$32768$8$1$…$…", staff_id: E01234}
    ```

    ``staff_id`` (optional): the user's id in the staff directory, under which their
    openings of timelines and subject pages are fed back as access events.
    """
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConsoleConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConsoleConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("users"), dict) or not raw["users"]:
        raise ConsoleConfigError(f"{path}: needs a `users:` mapping with at least one user")
    unknown = set(raw) - {"users", "session_minutes"}
    if unknown:
        raise ConsoleConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    minutes = raw.get("session_minutes", 480)
    if not isinstance(minutes, int | float) or minutes <= 0:
        raise ConsoleConfigError(f"{path}: session_minutes must be a number > 0")
    users = {}
    for name, entry in raw["users"].items():
        users[str(name)] = _user(path, str(name), entry)
    return Users(users, float(minutes))


def _user(path: Path, name: str, entry: Any) -> User:
    where = f"{path}: user {name}"
    if not isinstance(entry, dict) or set(entry) - {"role", "password", "staff_id"}:
        raise ConsoleConfigError(f"{where}: give exactly `role` and `password` (and, "
                                 "optionally, `staff_id`)")
    role, password = entry.get("role"), entry.get("password")
    if role not in ROLES:
        raise ConsoleConfigError(f"{where}: role must be one of {', '.join(ROLES)}")
    if not isinstance(password, str) or not is_password_hash(password):
        raise ConsoleConfigError(f"{where}: password must be a hash from "
                                 "`accesswatch console hash-password`, never the password")
    staff_id = entry.get("staff_id")
    if staff_id is not None and (not isinstance(staff_id, str | int) or not str(staff_id)
                                 or len(str(staff_id)) > 64):
        raise ConsoleConfigError(f"{where}: staff_id is the user's staff id (1 to 64 "
                                 "characters)")
    return User(name, role, password, None if staff_id is None else str(staff_id))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


_DUMMY_HASH = "$".join([SCHEME, str(DEFAULT_N), str(DEFAULT_R), str(DEFAULT_P),
                        _b64(b"\0" * 16), _b64(b"\0" * 32)])
