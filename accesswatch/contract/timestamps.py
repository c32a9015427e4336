"""RFC 3339 timestamps, strictly: a zone is required, the separator is ``T``.

RFC 3339 §5.6 allows ``t`` and ``z`` in lower case; we accept them.  A space
separator (an ISO 8601 habit some feeds have) is not RFC 3339 and is rejected.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from accesswatch.errors import InvalidRecord

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<zone>[Zz]|[+-]\d{2}:\d{2})?\Z"
)
# The shape nearly every feed sends: upper case, whole seconds, milliseconds or
# microseconds, a zone.  ``fromisoformat`` reads it as it is (no copy, no padding).
_PLAIN = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3}|\.\d{6})?(?:Z|[+-]\d{2}:\d{2})\Z"
)
_ZONELESS = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\Z")


def parse_ts(value: str, field: str = "ts") -> float:
    """Return the POSIX time of an RFC 3339 timestamp, or raise ``InvalidRecord``.

    >>> parse_ts("2026-03-02T08:00:00+01:00")
    1772434800.0
    """
    n = len(value)
    # Nearly every event: UTC, whole seconds or milliseconds or microseconds.  With
    # every separator in place ``fromisoformat`` takes only ASCII digits between them
    # (tested against ``_PLAIN``), so the pattern need not run: a third of the cost.
    if (value[n - 1:] == "Z" and (n == 20 or (n in (24, 27) and value[19] == "."))
            and value[10] == "T" and value[4] == "-" and value[7] == "-" and value[13] == ":"
            and value[16] == ":") or _PLAIN.match(value) is not None:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass  # a date that does not exist, or not digits: the full path says
    return _parse_strict(value, field)


def _parse_strict(value: str, field: str) -> float:
    """``parse_ts`` for every shape RFC 3339 allows (``t``, ``z``, offsets, 9 digits)."""
    m = _RFC3339.match(value)
    if m is None or m.group("zone") is None:
        raise InvalidRecord(_explain(value, field, m is not None), "bad_timestamp")
    text = value.upper()
    if "." in text:
        # fromisoformat takes at most 6 fractional digits; RFC 3339 allows more.
        head, _, rest = text.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = head + "." + (digits[:6]).ljust(6, "0") + rest[len(digits) :]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidRecord(
            f"{field}: {_show(value)} is not a valid date and time", "bad_timestamp"
        ) from None


_recent: dict[str, float] = {}


def parse_ts_recent(value: str, field: str = "ts") -> float:
    """``parse_ts``, remembering the last few thousand: a reference record's times
    are checked when it is decoded and read again when it is stored."""
    t = _recent.get(value)
    if t is None:
        t = parse_ts(value, field)
        if len(_recent) >= 4096:
            _recent.clear()
        _recent[value] = t
    return t


def _explain(value: str, field: str, shaped: bool) -> str:
    if shaped or _ZONELESS.match(value):
        return f"{field}: no time zone"
    return f"{field}: {_show(value)} is not an RFC 3339 timestamp"


def _show(value: str) -> str:
    # Timestamps are not personal data, but a hostile value may be anything: bound it.
    return repr(value if len(value) <= 40 else value[:40] + "…")


def format_ts(t: float) -> str:
    """POSIX time to RFC 3339 UTC with milliseconds, the form alerts carry."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
