"""Alerts as ECS documents for a SIEM."""

from __future__ import annotations

import json

import pytest

from console.ecs import ECS_VERSION, SEVERITY_NUMBER, to_ecs
from console.store import StaffInfo
from console.triage import decide
from tests.console.helpers import alert

MODEL = {"name": "iforest", "version": "abc123", "anomaly_score": 0.71,
         "top_features": [{"name": "opens_hour", "value": 61.0, "baseline": 5.0}]}


def test_the_ecs_core_fields() -> None:
    a = alert()
    doc = to_ecs(a)
    assert doc["@timestamp"] == a.created_at
    assert doc["ecs"] == {"version": ECS_VERSION}
    assert doc["event"]["kind"] == "alert"
    assert doc["event"]["id"] == a.alert_id
    assert doc["event"]["severity"] == 73
    assert doc["event"]["risk_score"] == a.score
    assert (doc["event"]["start"], doc["event"]["end"]) == (a.first_seen, a.last_seen)
    assert doc["rule"] == {"id": "AW-002", "name": a.title, "ruleset": "accesswatch"}
    assert doc["user"] == {"id": "E00412"}
    assert doc["related"] == {"user": ["E00412"]}
    assert doc["message"] == f"{a.title}: {a.reasons[0]}"
    assert doc["accesswatch"]["alert"]["event_ids"] == ["ev-1", "ev-2"]
    assert doc["accesswatch"]["alert"]["subject_ids"] == ["P-204"]
    assert "model" not in doc["accesswatch"] and "triage" not in doc["accesswatch"]
    json.dumps(doc)  # plain JSON all through


@pytest.mark.parametrize(("severity", "number"), sorted(SEVERITY_NUMBER.items()))
def test_severity_maps_to_a_number_that_orders(severity: str, number: int) -> None:
    assert to_ecs(alert(severity=severity))["event"]["severity"] == number
    assert sorted(SEVERITY_NUMBER, key=SEVERITY_NUMBER.get) == ["low", "medium", "high",  # type: ignore[arg-type]
                                                              "critical"]


def test_member_model_and_triage_are_added_but_never_the_note() -> None:
    d = decide(None, "aw-1", "misuse", by="bob", at="2026-03-02T10:00:00Z",
               note="knows the subject: their neighbour")
    doc = to_ecs(alert(model=MODEL), member=StaffInfo("constable", "Response", "North", "active"),
                 decision=d)
    assert doc["user"]["roles"] == ["constable"]
    assert doc["accesswatch"]["member"]["area"] == "North"
    assert doc["accesswatch"]["model"]["top_features"][0]["name"] == "opens_hour"
    assert doc["accesswatch"]["triage"] == {"status": "misuse", "by": "bob",
                                            "at": "2026-03-02T10:00:00Z", "assignee": None}
    assert "neighbour" not in json.dumps(doc)
