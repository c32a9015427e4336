"""The users file, read again when it changes: no restart to add, remove or re-role a user.

A task started with the app looks at the file's size, modification time and
inode every ``POLL_S``; when they change it loads the file and puts its users
in place.  Sessions carry a digest of their user's role and password
(``console.sessions.session_user``), so the sessions of a removed user, or of
one whose password or role changed, end with that change and their live
streams close.  A file that no longer loads is logged once and the previous
users kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from console.auth import ConsoleConfigError, Users, load_users
from console.web import USERS

log = logging.getLogger("accesswatch.console.auth")
# With the streams' check every 0.5 s, a change ends a stream within 0.75 s.
POLL_S = 0.25
Stamp = tuple[int, int, int] | None


def watch_users_file(app: web.Application, path: Path, every: float = POLL_S) -> None:
    """Reload ``app``'s users from ``path`` when it changes, while the app runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_watch(app[USERS], path, every), name="users-file")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(ctx)


async def _watch(users: Users, path: Path, every: float) -> None:
    check = reloader(users, path)
    while True:
        await asyncio.sleep(every)
        check()


def reloader(users: Users, path: Path) -> Callable[[], bool]:
    """A function that reloads ``users`` when ``path`` changed since the last call
    (or since now); it says whether it did."""
    seen = [_stamp(path)]

    def check() -> bool:
        stamp = _stamp(path)
        if stamp == seen[0]:
            return False
        seen[0] = stamp
        try:
            new = load_users(path)
        except ConsoleConfigError as e:
            log.error("users file not reloaded, the previous users kept: %s", e)
            return False
        users.replace(new)
        log.info("users file reloaded: %d users", len(new.by_name))
        return True

    return check


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
