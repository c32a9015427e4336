"""Columnar tables for reference data: arrays of numbers, blobs of bytes, an index by id.

A force's records system holds millions of people; a Python object per record
costs about a kilobyte each.  Here a record kind is a ``Table``: one NumPy array
per column, its ids and variable-length payloads in byte blobs, and an index by
id.  Nothing per record is a Python object: a worker holding 5,000,000 subjects
and their cases and duties spends about 88 bytes a record.

A table has two parts:

- **the base**: rows ``[0, base_n)``, sorted by the 64-bit fingerprint of
  their id, so the fingerprint column *is* the index.  A ``Directory`` of where
  each run of leading fingerprint bits starts (about one entry per four rows)
  narrows a search to a few neighbouring rows: one or two cache lines, where a
  binary search over millions touches twenty.  It is built in one go
  (``freeze``) and can be written to a snapshot and memory-mapped back (``save``
  / ``load``).
- **the tail**: rows appended since, found through a dict of their ids.

An update to a known id writes its row in place and a tombstone clears the
row's ``alive`` flag, in either part; only new ids are appended.  ``freeze``
folds the tail into a new base, dropping dead rows, when the tail grows past
``max(TAIL_MIN, base_n // 2)`` rows.

While ``loading`` (a cold read of a whole topic, or a file), rows are only
appended, with no index at all; the same id may appear many times and
tombstones are rows too.  ``freeze`` then keeps each id's last row, if alive.
"""

from __future__ import annotations

import hashlib
import zlib
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

TAIL_MIN = 100_000  # tail rows before a table folds them into its base
STAGE_ROWS = 8_192  # rows gathered in lists while loading before they go into the columns
GATHER_BYTES = 1 << 18  # bytes per step when a blob is rebuilt (bounds the temporaries)
_SIGN = 1 << 63


def fingerprint(data: bytes) -> int:
    """A 64-bit fingerprint of an id (signed, to fit int64), stable across processes.

    It only narrows a search: every match is checked against the id itself.
    """
    return ((zlib.crc32(data) << 32) | zlib.adler32(data)) - _SIGN


_KEYED = hashlib.blake2b(digest_size=8, person=b"aw-ref-key")


def key_of(text: str | None) -> int:
    """A 64-bit key for a normalised surname or postcode; 0 for none.

    Rules only ask whether two are equal, so the text itself is never held
    (nor written to a snapshot).  A keyed BLAKE2b: a false "same postcode"
    would be a false alert, so a checksum will not do.  (A copy of one set-up
    hash: a third cheaper than setting one up per key, and the same keys.)
    """
    if not text:
        return 0
    h = _KEYED.copy()
    h.update(text.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little", signed=True) or 1


class Directory:
    """Where each bucket of a sorted fingerprint array starts; a bucket is the
    fingerprints sharing their top ``bits`` bits (of the crc32 half).

    ``bounds(crc)`` gives the slice of the array that can hold a fingerprint
    whose crc32 half is ``crc``: about four entries, whatever the size.  Built
    from the sorted array in one ``searchsorted`` (so never saved), 4 bytes a
    bucket.
    """

    __slots__ = ("mv", "shift")

    def __init__(self, fps: np.ndarray) -> None:
        bits = min(26, max(0, (len(fps) // 4).bit_length()))
        self.shift = 32 - bits
        starts = (np.arange(1 << bits, dtype=np.uint64) << np.uint64(64 - bits)) \
            if bits else np.zeros(1, np.uint64)
        starts ^= np.uint64(_SIGN)  # unsigned order → the signed fingerprints' order
        table = np.empty((1 << bits) + 1, np.int32 if len(fps) < 1 << 31 else np.int64)
        table[:-1] = np.searchsorted(fps, starts.view(np.int64), "left")
        table[-1] = len(fps)
        self.mv = table.data

    def bounds(self, crc: int) -> tuple[int, int]:
        b = crc >> self.shift
        return self.mv[b], self.mv[b + 1]


class Blob:
    """Bytes appended and read back by (offset, length): a base (bytes, or a
    memory-mapped file) plus a tail that grows."""

    __slots__ = ("base", "base_len", "tail")

    def __init__(self, base: Any = b"") -> None:
        self.base = base
        self.base_len = len(base)
        self.tail = bytearray()

    def append(self, data: bytes) -> int:
        at = self.base_len + len(self.tail)
        self.tail += data
        return at

    def get(self, at: int, length: int) -> bytes:
        if at < self.base_len:
            return bytes(self.base[at:at + length])
        at -= self.base_len
        return bytes(self.tail[at:at + length])

    def array(self) -> np.ndarray:
        """All of it as one uint8 array: a copy only when it has both a base and a tail
        (while the array lives, nothing may be appended)."""
        if not self.tail:
            return np.frombuffer(self.base, dtype=np.uint8) if self.base_len else \
                np.zeros(0, np.uint8)
        if not self.base_len:
            return np.frombuffer(self.tail, dtype=np.uint8)
        return np.concatenate([np.frombuffer(self.base, dtype=np.uint8),
                               np.frombuffer(self.tail, dtype=np.uint8)])

    def __len__(self) -> int:
        return self.base_len + len(self.tail)


def gather(blob: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The slices ``blob[s:s+l]`` back to back, and where each now starts; about
    ``GATHER_BYTES`` at a time, so the temporaries stay a few MB whatever the size."""
    out, new_starts, at = [], np.empty(len(starts), np.int64), 0
    mean = int(lengths.mean()) if len(lengths) else 1
    step = max(1024, GATHER_BYTES // max(1, mean))
    for lo in range(0, len(starts), step):
        s, ln = starts[lo:lo + step], lengths[lo:lo + step].astype(np.int64)
        ends = np.cumsum(ln)
        firsts = ends - ln
        new_starts[lo:lo + len(s)] = firsts + at
        total = int(ends[-1]) if len(ends) else 0
        positions = np.repeat(s - firsts, ln)
        positions += np.arange(total, dtype=np.int64)
        out.append(blob[positions].tobytes())
        at += total
    return b"".join(out), new_starts


def _compact(blob: Blob, starts: np.ndarray, lengths: np.ndarray) -> tuple[Blob, np.ndarray]:
    """The blob a frozen table keeps (all of it a base) for the slices it still uses,
    and where each starts in it.  After a cold read, with little of it dropped, that is
    the blob as read: rebuilding it would only move its bytes (2 s at 6.7 M records)."""
    if not blob.base_len and int(lengths.sum()) * 4 >= len(blob) * 3:
        return Blob(blob.tail), starts
    data, new_starts = gather(blob.array(), starts, lengths)
    return Blob(data), new_starts


class Table:
    """One record kind: named columns, ids, payloads, the index; a single writer.

    ``columns``: name → NumPy dtype of the caller's columns; a row's values are a
    tuple in this order.  Every table also
    has ``fp`` (the id's fingerprint), ``alive``, ``id_at``/``id_len`` (into
    ``ids``) and, with ``payload``, ``pl_at``/``pl_len`` (into ``payloads``).
    """

    def __init__(self, columns: dict[str, str], *, payload: bool = False) -> None:
        self.dtypes: dict[str, np.dtype] = {
            "fp": np.dtype(np.int64), "alive": np.dtype(np.uint8),
            "id_at": np.dtype(np.int64), "id_len": np.dtype(np.int32),
            **({"pl_at": np.dtype(np.int64), "pl_len": np.dtype(np.int32)} if payload else {}),
            **{name: np.dtype(t) for name, t in columns.items()},
        }
        self.payload = payload
        self.n = 0  # rows, dead ones included
        self.base_n = 0
        self.live = 0  # rows alive (kept exactly outside loading)
        self.loading = False
        self.ids = Blob()
        self.payloads = Blob()
        self.recent: dict[str, int] = {}  # tail rows by id
        self.user_columns = tuple(columns)
        # While loading, rows gather in lists (an append is ~30 ns, a NumPy item ~150)
        # and go into the columns STAGE_ROWS at a time.
        self._staged: dict[str, list[Any]] = {name: [] for name in self.dtypes}
        self._user_lists = [self._staged[name] for name in self.user_columns]
        self._zeros = (0,) * len(self.user_columns)  # a tombstone's row
        self._flushed = 0
        # Widest first: the fields of a record need no padding between them.
        self.record = np.dtype(sorted(((name, dtype) for name, dtype in self.dtypes.items()
                                       if name != "fp"), key=lambda f: -f[1].itemsize),
                               align=True)
        self.cols: dict[str, np.ndarray] = {}
        self.mv: dict[str, memoryview] = {}
        self.capacity = 0
        self.directory = Directory(np.zeros(0, np.int64))
        self._new_storage(1024)
        self._views()

    # ---- storage -------------------------------------------------------------
    def _resize(self, capacity: int) -> None:
        old_fp, old_records, keep = self.cols["fp"], self.records, min(self.capacity, self.n)
        self._new_storage(capacity)
        self.cols["fp"][:keep] = old_fp[:keep]
        self.records[:keep] = old_records[:keep]  # whole records: one copy, not one a field
        self._views()

    def _new_storage(self, capacity: int) -> None:
        """Room for ``capacity`` rows: ``fp`` alone (the index, scanned in runs), every
        other column a field of one record per row, so a row read is one or two
        cache lines, not one a column."""
        self.records = np.zeros(capacity, self.record)
        self.cols = {"fp": np.zeros(capacity, np.int64),
                     **{name: self.records[name] for name in self.dtypes if name != "fp"}}

    def _views(self) -> None:
        self.mv = {name: a.data for name, a in self.cols.items()}
        self.capacity = len(self.cols["fp"])

    def id_at(self, row: int) -> str:
        mv = self.mv
        return self.ids.get(mv["id_at"][row], mv["id_len"][row]).decode("utf-8", "surrogatepass")

    def payload_at(self, row: int) -> bytes:
        mv = self.mv
        return self.payloads.get(mv["pl_at"][row], mv["pl_len"][row])

    # ---- index ---------------------------------------------------------------
    def find(self, key: str) -> int:
        """The row holding ``key`` (alive or not), or -1.  Not while loading.

        Asked on every first sight of an id: the bucket is searched in C (``bisect``),
        and an id's bytes are compared only where the fingerprint and length match.
        """
        row = self.recent.get(key)
        if row is not None:
            return row
        if not self.base_n:
            return -1
        data = key.encode("utf-8", "surrogatepass")
        crc = zlib.crc32(data)
        f = ((crc << 32) | zlib.adler32(data)) - _SIGN  # fingerprint(), inline
        directory, mv = self.directory.mv, self.mv
        fps, id_at, id_len = mv["fp"], mv["id_at"], mv["id_len"]
        b = crc >> self.directory.shift
        end = directory[b + 1]
        i = bisect_left(fps, f, directory[b], end)  # a bucket holds about four
        n = len(data)
        while i < end and fps[i] == f:
            # A base row's id is in the base blob: the fold put it there.
            if id_len[i] == n:
                at = id_at[i]
                if self.ids.base[at:at + n] == data:
                    return i
            i += 1
        return -1

    def row_alive(self, key: str) -> int:
        row = self.find(key)
        return row if row >= 0 and self.mv["alive"][row] else -1

    # ---- changes -------------------------------------------------------------
    def append(self, key: str, values: tuple[Any, ...], payload: bytes = b"",
               alive: bool = True) -> int:
        """A new row for ``key``; outside loading, only for an id not held."""
        if self.loading:  # a tombstone's row keeps no payload
            return self.stage_many([key], [values or self._zeros],
                                   [payload if alive else b""] if self.payload else None, alive)
        row = self.n
        if row >= self.capacity:  # also after ``load``: its fingerprints are mapped read-only
            self._resize(max(1024, row + row // 2))
        data = key.encode("utf-8", "surrogatepass")
        cols = self.cols
        cols["fp"][row] = fingerprint(data)
        cols["id_at"][row] = self.ids.append(data)
        cols["id_len"][row] = len(data)
        self.n = row + 1
        self._write(row, values, payload, alive)
        self.recent[key] = row
        return row

    def stage_many(self, keys: list[str], rows: list[tuple[Any, ...]],
                   payloads: list[bytes] | None = None, alive: bool = True) -> int:
        """While loading: ``append`` of each, a column at a time; the row number of the
        first.  A cold read is millions of records: per record this is a few list
        items, not a call and a dozen appends."""
        assert self.loading, "stage_many is for a bulk read"
        first = self.n
        if not keys:
            return first
        data = [k.encode("utf-8", "surrogatepass") for k in keys]
        st = self._staged
        crc, adler, sign = zlib.crc32, zlib.adler32, _SIGN
        st["fp"].extend([((crc(d) << 32) | adler(d)) - sign for d in data])  # fingerprint()
        self._stage_blob(self.ids, data, st["id_at"], st["id_len"])
        st["alive"].extend([int(alive)] * len(keys))
        if self.payload:
            assert payloads is not None and len(payloads) == len(keys)
            self._stage_blob(self.payloads, payloads, st["pl_at"], st["pl_len"])
        for column, values in zip(self._user_lists, zip(*rows, strict=True), strict=True):
            column.extend(values)
        self.n = first + len(keys)
        if self.n - self._flushed >= STAGE_ROWS:
            self._flush()
        return first

    @staticmethod
    def _stage_blob(blob: Blob, parts: list[bytes], at: list[int], lengths: list[int]) -> None:
        sizes = [len(b) for b in parts]
        at.extend(accumulate(sizes[:-1], initial=len(blob)))
        lengths.extend(sizes)
        blob.tail += b"".join(parts)

    def _flush(self) -> None:
        """Staged rows into the columns."""
        lo, hi = self._flushed, self.n
        if not self._staged["fp"]:  # rows appended outside loading are in the columns
            self._flushed = hi
            return
        if hi > self.capacity:
            self._resize(max(1024, hi + hi // 2))
        for name, values in self._staged.items():
            self.cols[name][lo:hi] = np.array(values, dtype=self.dtypes[name])
            values.clear()
        self._flushed = hi

    def write(self, row: int, values: tuple[Any, ...], payload: bytes = b"",
              alive: bool = True) -> None:
        """Overwrite ``row`` in place (an update, or a tombstone with ``alive=False``)."""
        self._write(row, values, payload, alive)

    def _write(self, row: int, values: tuple[Any, ...], payload: bytes, alive: bool) -> None:
        cols = self.cols
        was = bool(cols["alive"][row])
        cols["alive"][row] = alive
        if not self.loading:
            self.live += int(alive) - int(was)
        for name, value in zip(self.user_columns, values, strict=False):  # none: tombstone
            cols[name][row] = value
        if self.payload and alive:
            cols["pl_at"][row] = self.payloads.append(payload)
            cols["pl_len"][row] = len(payload)

    def wants_freeze(self) -> bool:
        return self.n - self.base_n > max(TAIL_MIN, self.base_n // 2)

    def freeze(self) -> np.ndarray:
        """Fold the tail (or everything loaded) into a new base sorted by fingerprint,
        keeping each id's last row and dropping dead ones; the old row of each new one."""
        self._flush()
        n = self.n
        fps = self.cols["fp"][:n]
        order = np.argsort(fps, kind="stable")  # equal fingerprints stay in row order
        sorted_fps = fps[order]
        last = np.ones(n, bool)
        if n:
            last[:-1] = sorted_fps[1:] != sorted_fps[:-1]
        runs = np.flatnonzero(~last)
        if len(runs):  # the same fingerprint on several rows: the same id again, mostly
            self._resolve_runs(order, sorted_fps, last, runs)
        keep_sorted = last & (self.cols["alive"][:n][order] == 1)
        keep = order[keep_sorted]
        del order, sorted_fps, last, keep_sorted
        m, cols = len(keep), self.cols
        # The blobs first, while only the old storage is held (the peak is lower so).
        starts: dict[str, np.ndarray] = {}
        self.ids, starts["id_at"] = _compact(self.ids, cols["id_at"][:n][keep],
                                             cols["id_len"][:n][keep])
        if self.payload:
            self.payloads, starts["pl_at"] = _compact(self.payloads, cols["pl_at"][:n][keep],
                                                      cols["pl_len"][:n][keep])
        old_fp, old_records = cols["fp"], self.records
        del cols
        self._new_storage(max(1024, m + m // 8))  # zeroed pages: only what is written is memory
        # Whole records in one gather each, straight into the new storage.
        np.take(old_fp[:n], keep, out=self.cols["fp"][:m], mode="clip")
        np.take(old_records[:n], keep, out=self.records[:m], mode="clip")
        del old_fp, old_records
        for name, at in starts.items():
            self.cols[name][:m] = at
        self._adopt(m)
        return keep

    def _resolve_runs(self, order: np.ndarray, sorted_fps: np.ndarray, last: np.ndarray,
                      runs: np.ndarray) -> None:
        """Within each run of equal fingerprints keep only the last row of each id."""
        i = 0
        while i < len(runs):
            start = int(runs[i])
            end = start
            while i < len(runs) and int(runs[i]) == end:
                end += 1
                i += 1
            seen: set[bytes] = set()
            for j in range(end, start - 1, -1):  # later rows (higher positions) win
                row = int(order[j])
                data = self.ids.get(int(self.cols["id_at"][row]), int(self.cols["id_len"][row]))
                last[j] = data not in seen
                seen.add(data)

    def _adopt(self, n: int) -> None:
        """The storage holds ``n`` rows, all of them the base: index them."""
        self.n = self.base_n = self.live = self._flushed = n
        self.recent = {}
        self.loading = False
        self.directory = Directory(self.cols["fp"][:n])
        self._views()

    def alive_rows(self) -> np.ndarray:
        return np.flatnonzero(self.cols["alive"][:self.n])

    def keys(self) -> Iterator[str]:
        for row in self.alive_rows():
            yield self.id_at(int(row))

    # ---- snapshots -----------------------------------------------------------
    def save(self, directory: Path, name: str) -> dict[str, Any]:
        """Write the frozen table to ``directory`` (call ``freeze`` first); its manifest entry."""
        assert self.n == self.base_n, "freeze before saving"
        files = {}
        for col in self.dtypes:
            files[col] = f"{name}.{col}.npy"
            np.save(directory / files[col], self.cols[col][:self.n])
        for blob, attr in (("ids", self.ids), ("payloads", self.payloads)):
            files[blob] = f"{name}.{blob}.bin"
            with (directory / files[blob]).open("wb") as f:
                f.write(attr.base)  # bytes or a mapped file, written as it is: no copy
        return {"rows": self.n, "files": files}

    def load(self, directory: Path, entry: dict[str, Any]) -> None:
        """The table as ``save`` wrote it: the fingerprints and blobs memory-mapped
        (shared by every worker on the host), the columns it changes read in."""
        files, n = entry["files"], int(entry["rows"])
        cols = {}
        for col, dtype in self.dtypes.items():
            a = np.load(directory / files[col], mmap_mode="r")
            if a.dtype != dtype or a.shape != (n,):
                raise ValueError(f"{files[col]}: {a.dtype}{a.shape}, expected {dtype}({n},)")
            cols[col] = a
        self._new_storage(max(1024, n + n // 8))
        for col, a in cols.items():
            if col != "fp":
                self.cols[col][:n] = a
        self.cols["fp"] = cols["fp"]  # never written: it stays mapped
        self._adopt(n)
        self.live = int(np.count_nonzero(self.cols["alive"][:n]))
        self.ids = Blob(_map(directory / files["ids"]))
        self.payloads = Blob(_map(directory / files["payloads"]))


def _map(path: Path) -> Any:
    import mmap

    size = path.stat().st_size
    if not size:
        return b""
    with path.open("rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


class Lookup:
    """A secondary index: a 64-bit key → rows of a table, for candidates only.

    Built in one go from arrays (``build``), then added to as rows change; rows
    that no longer match are never removed here, so the caller checks each
    candidate against the row itself.
    """

    def __init__(self) -> None:
        self.adopt(np.zeros(0, np.int64), np.zeros(0, np.int32))

    def build(self, keys: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.adopt(keys[order].astype(np.int64), rows[order].astype(np.int32))

    def adopt(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Take ``keys`` (sorted fingerprints) and their ``rows`` as they are."""
        self.keys, self.rows = keys, rows
        self._keys_mv = keys.data
        self.directory = Directory(keys)
        self.added: dict[int, set[int]] = {}

    def remap(self, old_to_new: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> None:
        """After the table's rows were renumbered (``Table.freeze``): every pair held,
        added, and given here, with its new row; pairs of rows dropped go."""
        added = [(k, r) for k, rs in self.added.items() for r in rs]
        all_keys = np.concatenate([self.keys, np.array([k for k, _ in added], np.int64), keys])
        all_rows = np.concatenate([self.rows.astype(np.int64),
                                   np.array([r for _, r in added], np.int64), rows])
        new = old_to_new[all_rows] if len(all_rows) else all_rows
        kept = new >= 0
        self.build(all_keys[kept], new[kept])

    def add(self, key: int, row: int) -> None:
        if key:
            self.added.setdefault(key, set()).add(row)

    def candidates(self, key: int) -> list[int]:
        """Rows that may hold ``key`` (a ``fingerprint``)."""
        keys = self._keys_mv
        i, end = self.directory.bounds((key + _SIGN) >> 32)
        while i < end and keys[i] < key:
            i += 1
        j = i
        while j < end and keys[j] == key:
            j += 1
        out = [int(r) for r in self.rows[i:j]] if j > i else []
        extra = self.added.get(key)
        if extra:
            out.extend(extra)
        return out

    def save(self, directory: Path, name: str) -> dict[str, str]:
        files = {"keys": f"{name}.keys.npy", "rows": f"{name}.rows.npy"}
        np.save(directory / files["keys"], self.keys)
        np.save(directory / files["rows"], self.rows)
        return files

    def load(self, directory: Path, files: dict[str, str]) -> None:
        keys = np.load(directory / files["keys"], mmap_mode="r")
        rows = np.load(directory / files["rows"], mmap_mode="r")
        if keys.dtype != np.int64 or rows.dtype != np.int32 or keys.shape != rows.shape:
            raise ValueError(f"{files['keys']}: does not match {files['rows']}")
        self.adopt(keys, rows)
