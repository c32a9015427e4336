"""Console tests: the live ones share the streams tests' broker fixture."""

from __future__ import annotations

import os

import pytest

from tests.streams.conftest import (  # noqa: F401
    KAFKA_IMPORT_NOISE,
    broker,
    live_env,
    live_settings,
)

# The browser tests write the screenshots in docs/ only when asked, so an ordinary run
# leaves the committed ones alone: ACCESSWATCH_SCREENSHOTS=1 pytest tests/console.
SCREENSHOTS = os.environ.get("ACCESSWATCH_SCREENSHOTS") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", KAFKA_IMPORT_NOISE)
