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


@pytest.fixture(scope="session")
def variant_feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    """The same force with ``--variants``."""
    out = tmp_path_factory.mktemp("force-variants")
    summary = generate_force(out, **SMALL, variants=True)
    return Feed.load(out, summary)
