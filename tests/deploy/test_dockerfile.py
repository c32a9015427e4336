"""The worker image: hadolint finds nothing, it runs as a non-root user, its pins are sound."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import DEPLOY, ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"
LOCK = DEPLOY / "requirements.lock"
# The image's platform, for the environment markers in pyproject.toml.
IMAGE_ENV = {"python_version": "3.11", "python_full_version": "3.11.13", "sys_platform": "linux",
             "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
             "platform_python_implementation": "CPython"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split()[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_hadolint_finds_nothing() -> None:
    done = run(tool("hadolint"), "--no-color", "--failure-threshold", "info", str(DOCKERFILE))
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_base_is_a_pinned_slim_python_3_11() -> None:
    bases = [args.split()[0] for op, args in instructions() if op == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", b) for b in bases), bases


def test_it_runs_as_a_numeric_non_root_user_and_checks_healthz() -> None:
    ops = instructions()
    final = ops[max(i for i, (op, _) in enumerate(ops) if op == "FROM"):]
    users = [args for op, args in final if op == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), users
    checks = [args for op, args in final if op == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0]
    assert ("ENTRYPOINT", '["accesswatch"]') in final


def test_what_the_dockerfile_copies_is_in_the_build_context() -> None:
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for op, args in instructions():
        if op == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                assert source in allowed, f"COPY {source}: excluded by .dockerignore"
                assert (ROOT / source).exists(), source


def test_the_lock_pins_every_runtime_dependency_within_pyproject_ranges() -> None:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"requirements.lock: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = pyproject["project"]["dependencies"] + pyproject["build-system"]["requires"]
    for spec in map(Requirement, wanted):
        if spec.marker and not spec.marker.evaluate(IMAGE_ENV):
            continue
        name = canonicalize_name(spec.name)
        assert name in pins, f"{spec.name} is not in requirements.lock: run `make lock`"
        assert spec.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name]}, outside {spec}: run `make lock`"
