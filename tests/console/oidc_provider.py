"""A real OpenID provider for the single sign-on tests: ``oidc-provider`` on Node.

Its npm packages (``tests/console/oidc/package.json``, pinned by its lock file) are
installed once into ``~/.cache/accesswatch-oidc/<digest of the two files>``, outside
the repository; ``make tools`` does it ahead (``python3 tests/console/oidc_provider.py``).
Without node or npm the tests skip, and under CI (``CI`` set) they fail instead.

Standard library only at import time, so ``make tools`` can run it before the venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "oidc"
SOURCES = ("package.json", "package-lock.json")


class Unavailable(Exception):
    """node or npm is missing, or the packages cannot be installed."""


def cache_dir() -> Path:
    digest = hashlib.sha256(b"".join((HERE / f).read_bytes() for f in SOURCES)).hexdigest()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "accesswatch-oidc" / digest[:16]


def install() -> Path:
    """The folder holding ``node_modules`` and ``provider.mjs``; installs once."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Unavailable("node and npm are not installed (make tools installs nodejs and npm)")
    target = cache_dir()
    if not (target / "node_modules" / "oidc-provider" / "package.json").exists():
        work = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for f in SOURCES:
            shutil.copy(HERE / f, work / f)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=work, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise Unavailable(f"npm ci failed in {work}: {done.stderr.strip()[-500:]}")
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    shutil.copy(HERE / "provider.mjs", target / "provider.mjs")  # always today's script
    return target


class ProviderProcess:
    """``provider.mjs`` running: ``issuer`` is its URL (on 127.0.0.1, a free port).

    ``accounts`` maps a login name to its role claim; a name not in it has none.
    """

    def __init__(self, redirect_uri: str, accounts: dict[str, str], *,
                 client_id: str = "accesswatch-console",
                 client_secret: str = "console-test-secret") -> None:
        folder = install()
        env = {**os.environ, "OIDC_REDIRECT_URI": redirect_uri,
               "OIDC_ACCOUNTS": json.dumps(accounts), "OIDC_CLIENT_ID": client_id,
               "OIDC_CLIENT_SECRET": client_secret, "DEBUG": ""}
        self.log = folder.parent / f"provider-{os.getpid()}-{time.monotonic_ns()}.log"
        self._stderr = self.log.open("w")
        self.proc = subprocess.Popen([shutil.which("node") or "node", "provider.mjs"],
                                     cwd=folder, env=env, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True)
        self.issuer = self._first_line(deadline=time.monotonic() + 30)["issuer"]

    def _first_line(self, deadline: float) -> dict[str, str]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.5):
                    line = self.proc.stdout.readline()
                    if line:
                        return dict(json.loads(line))
                if self.proc.poll() is not None:
                    break
        self.close()
        raise Unavailable(f"the OpenID provider did not start: {self.log.read_text()[-800:]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        if "Error" not in self.log.read_text():  # kept only when the provider failed
            self.log.unlink()


if __name__ == "__main__":
    try:
        print(f"oidc-provider for the SSO tests: {install()}")
    except Unavailable as e:
        print(f"oidc-provider for the SSO tests not installed: {e}", file=sys.stderr)
