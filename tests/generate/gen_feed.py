"""A generated force loaded for inspection, and the catalogue's definitions
written out independently of the generator so the tests can judge its labels."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Override to try other forces: AW_GEN_STAFF=400 AW_GEN_DAYS=10 AW_GEN_SEED=3 pytest tests/generate
SMALL: dict[str, Any] = {
    "staff": int(os.environ.get("AW_GEN_STAFF", "150")),
    "days": int(os.environ.get("AW_GEN_DAYS", "7")),
    "seed": int(os.environ.get("AW_GEN_SEED", "11")),
}
# AW_GEN_START=2026-03-23T00:00:00+00:00 runs across the clocks going forward.
if os.environ.get("AW_GEN_START"):
    SMALL["start"] = datetime.fromisoformat(os.environ["AW_GEN_START"])
START = SMALL.get("start") or datetime(2026, 3, 2, tzinfo=UTC)
PROTECTIVE = ("vip", "restricted", "protected")
_REPO = pathlib.Path(__file__).resolve().parents[2]


def schema_dir() -> pathlib.Path:
    """The shared contract if it sits beside the repository, else the project's copy."""
    for candidate in (
        _REPO.parent / "shared" / "contract",
        pathlib.Path("/work/shared/contract"),
        _REPO / "accesswatch" / "contract" / "schemas",
    ):
        if (candidate / "access_event.schema.json").exists():
            return candidate
    raise FileNotFoundError("no copy of the data contract's schemas found")


def instant(text: str) -> float:
    dt = datetime.fromisoformat(text)
    assert dt.tzinfo is not None, text
    return dt.timestamp()


def pc_key(text: str | None) -> str | None:
    return "".join(text.split()).upper() or None if text else None


def name_key(text: str | None) -> str | None:
    return text.strip().casefold() or None if text else None


@dataclass
class Feed:
    path: pathlib.Path
    summary: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    duties: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    labelled: dict[str, str] = field(default_factory=dict)  # event_id -> scenario
    staff_person_ids: dict[str, str] = field(default_factory=dict)  # person_id -> user_id

    @classmethod
    def load(cls, path: pathlib.Path, summary: dict[str, Any]) -> Feed:
        feed = cls(path, summary)
        for line in (path / "events.jsonl").read_text().splitlines():
            e = json.loads(line)
            e["_t"] = instant(e["ts"])
            feed.events.append(e)
        feed.by_id = {e["event_id"]: e for e in feed.events}
        feed.staff = {s["user_id"]: s for s in _lines(path / "staff.jsonl")}
        feed.subjects = {s["subject_id"]: s for s in _lines(path / "subjects.jsonl")}
        feed.cases = {c["case_ref"]: c for c in _lines(path / "cases.jsonl")}
        for d in _lines(path / "duties.jsonl"):
            feed.duties.setdefault(d["user_id"], []).append(
                (instant(d["start"]), instant(d["end"]))
            )
        feed.labels = json.loads((path / "labels.json").read_text())
        for inc in feed.labels["incidents"]:
            for eid in inc["event_ids"]:
                feed.labelled[eid] = inc["scenario"]
        feed.staff_person_ids = {
            s["person_id"]: u for u, s in feed.staff.items() if s.get("person_id")
        }
        return feed

    # -- the catalogue, read from scenarios.md -------------------------------------------

    def justified(self, e: dict[str, Any]) -> bool:
        """case_ref exists, was open then, has the user, and lists the subject if it lists any."""
        c = self.cases.get(e.get("case_ref") or "")
        if c is None or e["user_id"] not in c["assigned_users"]:
            return False
        if c.get("opened_at") and e["_t"] < instant(c["opened_at"]):
            return False
        if c.get("closed_at") and e["_t"] >= instant(c["closed_at"]):
            return False
        listed = c.get("subject_ids") or []
        return not listed or e.get("subject_id") in listed

    def victim_covered(self, e: dict[str, Any]) -> bool:
        """Assigned to an open case that lists the person (S06)."""
        for c in self.cases.values():
            if e["user_id"] in c["assigned_users"] and e.get("subject_id") in (
                c.get("subject_ids") or []
            ):
                opened = c.get("opened_at")
                closed = c.get("closed_at")
                if (not opened or instant(opened) <= e["_t"]) and (
                    not closed or e["_t"] < instant(closed)
                ):
                    return True
        return False

    def off_duty_by(self, e: dict[str, Any]) -> float:
        """Seconds from the event to the nearest duty of its user (0 when on duty)."""
        best = float("inf")
        for s, t in self.duties.get(e["user_id"], []):
            if s <= e["_t"] <= t:
                return 0.0
            best = min(best, s - e["_t"] if e["_t"] < s else e["_t"] - t)
        return best

    def subject(self, e: dict[str, Any]) -> dict[str, Any] | None:
        sid = e.get("subject_id")
        return self.subjects.get(sid) if sid else None

    def opens(self) -> Iterator[dict[str, Any]]:
        return (e for e in self.events if e.get("subject_id"))

    def areas(self) -> set[str]:
        return {s["area"] for s in self.subjects.values() if s.get("area")}


def _lines(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
