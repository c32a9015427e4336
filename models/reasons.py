"""A verdict in an analyst's words: each explaining column's value, its usual, a sentence.

For example: "opened 14 people or incidents with no justifying case in the last
hour (20 in four hours), 70% of the hour's 20 opens".
"""

from __future__ import annotations

import math

from accesswatch.core.features import RAW, Row

Feature = dict[str, float | str | None]


def value_and_baseline(
    row: Row, name: str, column: float, median: float
) -> tuple[float, float | None]:
    """A column's raw value and its usual, rounded, in the units an analyst reads.

    ``column`` is the row's value of the column, ``median`` the column's training
    median for the row's peer group.
    """
    v = dict(zip(RAW, row.values, strict=True))
    plain = {
        "unjustified_1h": (v["doubtful_1h"], math.expm1(median)),
        "unjustified_share": (column, median),
        "unjustified_10m": (v["doubtful_10m"], math.expm1(median)),
        "unjustified_4h": (v["doubtful_4h"], math.expm1(median)),
        "out_of_area_1h": (v["out_of_area_1h"], median),
        "out_of_area_4h": (v["out_of_area_4h"], median),
        "prints_1h": (v["prints_1h"], math.expm1(median)),
        "prints_4h": (v["prints_4h"], math.expm1(median)),
        "off_duty_minutes": (v["off_duty_minutes"], 0.0),
    }
    value, baseline = plain[name]
    return round(float(value), 3), round(float(baseline), 3)


def reasons(row: Row, top: list[Feature]) -> list[str]:
    """One sentence per kind of doubtful work among ``top``, strongest first."""
    v = dict(zip(RAW, row.values, strict=True))
    said: set[str] = set()
    out = []
    for f in top:
        name = str(f["name"])
        family = name.rsplit("_", 1)[0] if name.endswith(("_1h", "_4h", "_10m")) else name
        family = "unjustified" if family.startswith("unjustified") else family
        if family not in said:
            said.add(family)
            out.append(_reason(family, v))
    return out


def _reason(family: str, v: dict[str, float]) -> str:
    if family == "unjustified":
        doubtful, opens = v["doubtful_1h"], v["opens_1h"]
        text = (
            f"opened {doubtful:.0f} people or incidents with no justifying case in the last "
            f"hour ({v['doubtful_4h']:.0f} in four hours), {doubtful / max(opens, 1):.0%} of "
            f"the hour's {opens:.0f} opens"
        )
        if v["doubtful_10m"] >= 5:
            text += f" ({v['doubtful_10m']:.0f} of them in the last ten minutes)"
        return text
    if family == "out_of_area":
        return (
            f"opened records from outside their area with no justifying case "
            f"{v['out_of_area_1h']:.0f} times in the last hour, {v['out_of_area_4h']:.0f} in "
            f"four hours"
        )
    if family == "prints":
        return (
            f"printed or exported {v['prints_1h']:.0f} records or lists in the last hour, "
            f"{v['prints_4h']:.0f} in four hours"
        )
    return f"was working {v['off_duty_minutes']:.0f} minutes outside any rostered duty"


def public(top: list[Feature]) -> list[Feature]:
    """The explaining columns as an alert shows them: name, value and usual."""
    keys = ("name", "value", "baseline")
    return [{k: f[k] for k in keys} for f in top]
