"""evaluate: variants scored in a block of their own, never false alerts; the model's
evidence checked against the incident it describes."""

from __future__ import annotations

from typing import Any

from accesswatch.evaluate import evaluate, model_evidence


def incident(iid: str, user: str, ids: list[str]) -> dict[str, Any]:
    return {"incident_id": iid, "scenario": iid[:3], "user_id": user, "event_ids": ids,
            "first_ts": "2026-03-05T10:00:00Z"}


def alert(user: str, rule: str, ids: list[str], *reasons: str) -> dict[str, Any]:
    return {"alert_id": f"{rule}-{user}-{ids[0]}", "user_id": user, "rule_id": rule,
            "event_ids": ids, "first_seen": "2026-03-05T10:00:00Z",
            "last_seen": "2026-03-05T11:00:00Z", "reasons": list(reasons)}


LABELS = {"staff": 1000, "days": 2, "incidents": [
    incident("S08-001", "u1", ["a1", "a2"]),
    incident("V08-001", "u2", ["b1", "b2", "b3", "b4"]),
    incident("V13-001", "u3", ["c1", "c2"]),
]}


def test_variants_have_their_own_block_and_their_alerts_are_true() -> None:
    card = evaluate(LABELS, [alert("u1", "AW-008", ["a1"]),
                             alert("u2", "AW-M01", ["b1", "b2", "b3", "x9"]),
                             alert("u4", "AW-M01", ["z1"])])
    assert [s.scenario for s in card.scenarios if s.incidents] == ["S08"]
    assert {v.scenario: (v.incidents, v.detected) for v in card.variants} == {
        "V08": (1, 1), "V13": (1, 0)}
    assert card.variant_recall == 0.5
    assert card.false_alerts == 1  # only u4's: the variant's alert is a true one
    assert card.per_incident == [1]  # variants stay out of the scenarios' alerts per incident
    text = card.to_text()
    assert "V08 slow_harvest" in text and "all variants" in text
    assert card.to_json()["variant_recall"] == 0.5


def test_without_variants_the_scorecard_has_no_variant_block() -> None:
    labels = {**LABELS, "incidents": LABELS["incidents"][:1]}
    card = evaluate(labels, [alert("u1", "AW-008", ["a1"])])
    assert card.variants == [] and card.variant_recall is None
    assert "variant" not in card.to_text()
    assert card.evidence is None  # no model alert


def test_model_evidence_is_the_share_inside_the_incident_it_describes() -> None:
    alerts = [
        alert("u2", "AW-M01", ["b1", "b2", "b3", "x9"]),  # three of four inside V08-001
        alert("u3", "AW-M01", ["c1", "c2"], "also AW-015: three people from elsewhere"),
        alert("u3", "AW-M01", ["y1"]),  # false: it describes no incident, so is not counted
        alert("u1", "AW-008", ["a1", "q1"]),  # not the model's
        alert("u2", "AW-M01", ["a1", "a2"]),  # u1's incident's events, on u2: not u2's
    ]
    e = model_evidence(LABELS["incidents"], alerts)
    assert e is not None
    assert (e.alerts, e.event_ids, e.inside) == (2, 6, 5)
    assert e.worst == 0.75
    assert (e.alone, e.alone_ids, e.alone_inside) == (1, 4, 3)
    assert "model evidence inside its incident: 83%" in e.to_text()
    assert "in the 1 no other rule joined, 75%" in e.to_text()
    assert evaluate(LABELS, alerts).to_json()["model_evidence"]["share"] == round(5 / 6, 4)
