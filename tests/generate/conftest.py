"""One small generated force, shared by the generator tests."""

from __future__ import annotations

import pytest

from accesswatch.generate import generate_force
from tests.generate.gen_feed import SMALL, Feed


@pytest.fixture(scope="session")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    out = tmp_path_factory.mktemp("force")
    summary = generate_force(out, **SMALL)
    return Feed.load(out, summary)
