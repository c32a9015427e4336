"""Console tests: the live ones share the streams tests' broker fixture."""

from __future__ import annotations

import pytest

from tests.streams.conftest import (  # noqa: F401
    KAFKA_IMPORT_NOISE,
    broker,
    live_env,
    live_settings,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", KAFKA_IMPORT_NOISE)
