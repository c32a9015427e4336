"""Shared by the reliability tests: the session's broker, one generated force, the figures.

The live tests reuse tests/streams' broker fixture and worker helpers; each
test still gets its own app id and topics (``pipeline_env``).  Nothing here
imports kafka-python at module level: its import-time deprecation noise must
meet the warning filter added below first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.streams.conftest import (
    KAFKA_IMPORT_NOISE,
    broker,  # noqa: F401  (the session's noida-db broker)
)

if TYPE_CHECKING:
    from tests.reliability.harness import Force, Ledger


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", KAFKA_IMPORT_NOISE)


@pytest.fixture(scope="session")
def force(tmp_path_factory: pytest.TempPathFactory) -> Force:
    """A 150-member, 3-day force with invalid lines mixed in, and its backtest."""
    from tests.reliability.harness import make_force

    return make_force(tmp_path_factory.mktemp("reliability-force"))


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    from tests.reliability.harness import LEDGER

    return LEDGER


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures of every fault test that ran (the reliability table in docs/live-pipeline.md)."""
    import sys

    harness = sys.modules.get("tests.reliability.harness")
    if harness is not None and harness.LEDGER.figures:
        terminalreporter.section("reliability figures")
        for f in harness.LEDGER.figures:
            terminalreporter.write_line(f.line())
