"""Password hashes, the users file and the hash-password command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.auth import (
    ConsoleConfigError,
    hash_password,
    is_password_hash,
    load_users,
    verify_password,
)
from tests.console.helpers import make_users, users_yaml


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse battery", n=2**10)
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)
    assert "correct" not in stored and is_password_hash(stored)


def test_each_hash_has_its_own_salt() -> None:
    a, b = hash_password("same password", n=2**10), hash_password("same password", n=2**10)
    assert a != b and a.split("$")[4] != b.split("$")[4]
    assert verify_password("same password", a) and verify_password("same password", b)


def test_the_default_cost_is_real_scrypt() -> None:
    scheme, n, r, p, _, _ = hash_password("a long enough password").split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**15, 8, 1)


@pytest.mark.parametrize("stored", ["", "plain-text", "scrypt$1$2$3", "pbkdf2$1$1$1$AA$AA",
                                    "scrypt$x$8$1$AAAA$AAAA", "scrypt$1024$8$1$!!$!!"])
def test_a_malformed_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_an_empty_password_is_not_hashed() -> None:
    with pytest.raises(ValueError):
        hash_password("")


def test_authenticate_refuses_unknown_names_and_wrong_passwords() -> None:
    users = make_users()
    assert users.authenticate("lena", "lead-password-1") is not None
    assert users.authenticate("lena", "wrong") is None
    assert users.authenticate("nobody", "lead-password-1") is None


def test_the_users_file_loads_roles_and_lifetime(tmp_path: Path) -> None:
    users = load_users(users_yaml(tmp_path / "users.yaml"))
    assert {u.username: u.role for u in users.by_name.values()} == {
        "lena": "lead", "ana": "analyst", "vic": "viewer"}
    assert users.session_minutes == 60
    assert users.by_name["lena"].may("export") and not users.by_name["ana"].may("export")
    assert users.by_name["ana"].may("triage") and not users.by_name["vic"].may("triage")


@pytest.mark.parametrize(("text", "says"), [
    ("users:\n  bob: {role: analyst, password: hunter2hunter2}\n",
     "user bob: password must be a hash"),
    ("users:\n  bob: {role: admin, password: 'scrypt$1$8$1$AA$AA'}\n",
     "user bob: role must be one of"),
    ("users:\n  bob: {role: analyst}\n", "user bob: password must be a hash"),
    ("users:\n  bob: {role: analyst, password: 'scrypt$1$8$1$AA$AA', email: x}\n",
     "give exactly `role` and `password`"),
    ("users: {}\n", "needs a `users:` mapping"),
    ("session_minutes: -5\nusers:\n  bob: {role: analyst, password: 'scrypt$1$8$1$AA$AA'}\n",
     "session_minutes must be a number > 0"),
    ("secret: x\nusers:\n  bob: {role: analyst, password: 'scrypt$1$8$1$AA$AA'}\n",
     "unknown key(s) secret"),
    ("users: [\n", "not valid YAML"),
])
def test_a_bad_users_file_is_refused_naming_what(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(text)
    with pytest.raises(ConsoleConfigError) as e:
        load_users(path)
    assert str(e.value).startswith(f"{path}: ") and says in str(e.value)


def test_hash_password_command_prints_a_hash_that_verifies(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "accesswatch.cli", "console", "hash-password",
                           "--stdin"], input="a sufficiently long one\n", capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert verify_password("a sufficiently long one", stored)
    short = subprocess.run([sys.executable, "-m", "accesswatch.cli", "console", "hash-password",
                            "--stdin"], input="short\n", capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
