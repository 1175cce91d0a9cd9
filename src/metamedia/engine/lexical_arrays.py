"""The flat arrays behind the in-memory BM25 index (`engine.lexical`).

A loaded keyword index is a handful of arrays rather than a Python object per
row, title key and term: postings per field (CSR by term), the vocabulary as one
sorted fixed-width byte array, and the title keys in their saved packed bytes
with a sorted hash table. What was appended since the last rebuild sits in small
tails until the next fold. One numpy object or tuple per row cost several times
the data it held: the 36k-film catalog's index took ~67 MB resident that way,
~18 MB like this.

Pure data structures: no I/O, no analysis of text (that is `engine.lexical`).
"""

from __future__ import annotations

import itertools
from array import array
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

K1 = 1.2  # BM25's term-frequency saturation
B = 0.75  # BM25's length normalisation


class PostingField:
    """Postings of one field (by term: positions and term frequencies), and the rows
    appended since they were last built.

    The postings are CSR arrays over the whole base (a loaded state, or every row at
    the last rebuild); rows appended since (at most 2 x `lexical.DELTA_LIMIT`, then they are
    folded in) keep their forward rows and side postings in `array` buffers. The
    base keeps no forward rows: they are the postings transposed, and only removal
    (which terms a retired document held) and saving read them, so both scan the
    postings instead of the index holding every term twice. One numpy object per
    row, as this once kept, costs several times the data it holds.
    """

    def __init__(self) -> None:
        self.tail_terms: list[npt.NDArray[np.int32]] = []
        self.tail_tf: list[FloatArray] = []
        self.lengths = Growing(np.float32)
        self.base_n = 0  # rows in the postings arrays
        self.indptr: IntArray = np.zeros(1, dtype=np.int64)
        self.post_pos: npt.NDArray[np.int32] = np.empty(0, dtype=np.int32)
        self.post_tf: FloatArray = np.empty(0, dtype=np.float32)
        self.delta: dict[int, tuple[array[int], array[float]]] = {}
        self._norm: tuple[float, int, FloatArray] | None = None

    def load(
        self,
        rows: tuple[IntArray, npt.NDArray[np.int32], FloatArray],
        lengths: FloatArray,
        vocab_size: int,
    ) -> None:
        """Postings of saved forward rows (indptr, terms, tf)."""
        indptr, terms, tfs = rows
        n = indptr.shape[0] - 1
        positions = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
        self._build(positions, terms, tfs, vocab_size)
        self.base_n = n
        self.tail_terms, self.tail_tf, self.delta, self._norm = [], [], {}, None
        self.lengths = Growing(np.float32, lengths)

    def append(self, pos: int, terms: list[int], index_delta: bool) -> npt.NDArray[np.int32]:
        counts = Counter(terms)
        ids = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
        tfs = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        self.tail_terms.append(ids)
        self.tail_tf.append(tfs)
        self.lengths.append(float(len(terms)))
        if index_delta:
            delta = self.delta
            for term, tf in counts.items():
                side = delta.get(term)
                if side is None:
                    side = delta[term] = (array("i"), array("f"))
                side[0].append(pos)
                side[1].append(float(tf))
        return ids

    def __len__(self) -> int:
        return self.base_n + len(self.tail_terms)

    def _posting_terms(self) -> npt.NDArray[np.int32]:
        """The term of every base posting."""
        vocab = self.indptr.shape[0] - 1
        return np.repeat(np.arange(vocab, dtype=np.int32), np.diff(self.indptr))

    def _tail(self) -> tuple[IntArray, npt.NDArray[np.int32], npt.NDArray[np.int32], FloatArray]:
        """The appended rows flat: (row sizes, position, term, tf) in position order."""
        sizes = np.fromiter((r.shape[0] for r in self.tail_terms), dtype=np.int64)
        first = self.base_n
        positions = np.repeat(np.arange(first, first + sizes.shape[0], dtype=np.int32), sizes)
        terms = np.asarray(concat(self.tail_terms, np.int32), dtype=np.int32)
        tfs = np.asarray(concat(self.tail_tf, np.float32), dtype=np.float32)
        return sizes, positions, terms, tfs

    def terms_of(self, positions: IntArray) -> tuple[IntArray, npt.NDArray[np.int32]]:
        """Terms of the rows at (distinct) `positions`: (position, term) pairs."""
        base = positions[positions < self.base_n]
        member = np.zeros(self.base_n, dtype=np.bool_)
        member[base] = True
        hit = np.flatnonzero(member[self.post_pos]) if base.shape[0] else np.empty(0, np.int64)
        owner_b = self.post_pos[hit].astype(np.int64)
        terms_b = (np.searchsorted(self.indptr, hit, side="right") - 1).astype(np.int32)
        tail = positions[positions >= self.base_n].tolist()
        rows = [self.tail_terms[p - self.base_n] for p in tail]
        sizes = np.fromiter((r.shape[0] for r in rows), dtype=np.int64, count=len(rows))
        owner_t = np.repeat(np.asarray(tail, dtype=np.int64), sizes)
        return np.concatenate([owner_b, owner_t]), np.concatenate([terms_b, concat(rows, np.int32)])

    def rows(self) -> tuple[IntArray, npt.NDArray[np.int32], FloatArray]:
        """All forward rows as CSR (indptr, terms, tf); a base row lists its terms by id
        (the order within a row means nothing: every reader sorts or counts)."""
        by_row = np.argsort(self.post_pos, kind="stable")
        tail_sizes, _, tail_terms, tail_tf = self._tail()
        sizes = np.concatenate([np.bincount(self.post_pos, minlength=self.base_n), tail_sizes])
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        terms = np.concatenate([self._posting_terms()[by_row], tail_terms]).astype(np.int32)
        tfs = np.concatenate([self.post_tf[by_row], tail_tf]).astype(np.float32)
        return indptr, terms, tfs

    def rebuild_postings(self, vocab_size: int) -> None:
        """Fold the appended rows into the postings."""
        _, tail_pos, tail_terms, tail_tf = self._tail()
        self._build(
            np.concatenate([self.post_pos, tail_pos]),
            np.concatenate([self._posting_terms(), tail_terms]),
            np.concatenate([self.post_tf, tail_tf]),
            vocab_size,
        )
        self.base_n += len(self.tail_terms)
        self.tail_terms, self.tail_tf, self.delta = [], [], {}

    def _build(
        self,
        positions: npt.NDArray[np.int32],
        terms: npt.NDArray[np.int32],
        tfs: FloatArray,
        vocab_size: int,
    ) -> None:
        """Postings of (position, term, tf) triples listed in position order (a stable
        sort by term keeps each term's positions ascending)."""
        order = np.argsort(terms, kind="stable")
        self.post_pos = positions[order].astype(np.int32, copy=False)
        self.post_tf = tfs[order].astype(np.float32, copy=False)
        counts = np.bincount(terms, minlength=vocab_size)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def norm(self, avg: float) -> FloatArray:
        """BM25's length norm of every row for a mean length `avg`, kept for the next
        query (a tenant's mean moves only when its documents change)."""
        n = len(self.lengths)
        if self._norm is None or self._norm[0] != avg or self._norm[1] != n:
            lengths = np.asarray(self.lengths.view, dtype=np.float32)
            self._norm = (avg, n, K1 * (1.0 - B + B * lengths / avg))
        return self._norm[2]

    def postings(self, term: int) -> tuple[npt.NDArray[np.int32], FloatArray]:
        if term + 1 < self.indptr.shape[0]:
            lo, hi = int(self.indptr[term]), int(self.indptr[term + 1])
            pos, tf = self.post_pos[lo:hi], self.post_tf[lo:hi]
        else:
            pos, tf = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
        extra = self.delta.get(term)
        if extra:
            # Copied out at once: a live view would pin the buffers against growing.
            pos = np.concatenate([pos, np.frombuffer(extra[0], dtype=np.int32)])
            tf = np.concatenate([tf, np.frombuffer(extra[1], dtype=np.float32)])
        return pos, tf


class Growing:
    """A numpy column that grows by doubling (appending to a list and converting
    on every query costs more than the query itself)."""

    def __init__(self, dtype: type, values: npt.ArrayLike | None = None) -> None:
        initial: npt.NDArray[np.generic] = np.asarray(
            values if values is not None else [], dtype=dtype
        )
        self._data = np.empty(max(1024, initial.shape[0]), dtype=dtype)
        self._data[: initial.shape[0]] = initial
        self._n = initial.shape[0]

    def append(self, value: object) -> None:
        if self._n == self._data.shape[0]:
            grown = np.empty(2 * self._n, dtype=self._data.dtype)
            grown[: self._n] = self._data
            self._data = grown
        self._data[self._n] = value
        self._n += 1

    def __len__(self) -> int:
        return int(self._n)

    @property
    def view(self) -> npt.NDArray[np.generic]:
        return self._data[: self._n]


class TitleKeys:
    """Each position's exact-title keys, and the live positions filed under each key.

    The base (a loaded state, or every position at the last rebuild) is the saved
    packing itself: one byte buffer of every position's keys ("\\x1f" between keys,
    "\\n" between positions) with the offsets of its segments, and the live
    (key, position) pairs as sorted key hashes beside their positions. A lookup
    bisects the hashes and confirms the key in each candidate's own segment (a hash
    may collide). Positions appended since sit in a dict until the next rebuild. A
    tuple of strings per position and a list per key would cost ten times the buffer.
    Removed positions stay filed: a lookup keeps live positions only.
    """

    def __init__(self) -> None:
        self.blob: npt.NDArray[np.uint8] = np.empty(0, dtype=np.uint8)
        self.bounds: IntArray = np.zeros(1, dtype=np.int64)  # segment p ends at bounds[p+1]-1
        self.hashes: IntArray = np.empty(0, dtype=np.int64)
        self.holders: npt.NDArray[np.int32] = np.empty(0, dtype=np.int32)
        self.tail: list[tuple[str, ...]] = []
        self.tail_index: dict[str, list[int]] = {}

    @property
    def base_n(self) -> int:
        return int(self.bounds.shape[0]) - 1

    def __len__(self) -> int:
        return self.base_n + len(self.tail)

    def load(self, packed: npt.NDArray[np.uint8]) -> None:
        """Adopt a saved packing as the base (no positions filed yet: see `file_live`)."""
        self.blob = packed
        if packed.shape[0] == 0:  # no segments at all, as `unpack_strings` reads it
            self.bounds = np.zeros(1, dtype=np.int64)
        else:
            breaks = np.flatnonzero(packed == ord("\n")).astype(np.int64) + 1
            self.bounds = np.concatenate([[0], breaks, [packed.shape[0] + 1]]).astype(np.int64)
        self.tail, self.tail_index = [], {}

    def file_live(self, live: BoolArray) -> None:
        """File the base's live positions under the hashes of their keys (one key string
        at a time: a list of every key would leave the heap fragmented for good)."""
        pairs = np.fromiter(
            itertools.chain.from_iterable(
                (hash(key), pos)
                for pos in np.flatnonzero(live[: self.base_n]).tolist()
                for key in self.keys_of(pos)
            ),
            dtype=np.int64,
        ).reshape(-1, 2)
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))
        self.hashes = np.ascontiguousarray(pairs[order, 0])
        self.holders = pairs[order, 1].astype(np.int32)

    def append(self, pos: int, keys: tuple[str, ...]) -> None:
        self.tail.append(keys)
        for key in keys:
            self.tail_index.setdefault(key, []).append(pos)

    def keys_of(self, pos: int) -> tuple[str, ...]:
        if pos >= self.base_n:
            return self.tail[pos - self.base_n]
        lo, hi = int(self.bounds[pos]), int(self.bounds[pos + 1]) - 1
        return tuple(k for k in self.blob[lo:hi].tobytes().decode().split("\x1f") if k)

    def lookup(self, key: str, live: BoolArray) -> list[int]:
        """Live positions holding `key`, ascending."""
        h = hash(key)
        lo = int(np.searchsorted(self.hashes, h, side="left"))
        hi = int(np.searchsorted(self.hashes, h, side="right"))
        found: list[int] = []
        for pos in dict.fromkeys(self.holders[lo:hi].tolist()):
            if live[pos]:
                found.extend([pos] * self.keys_of(pos).count(key))
        found.extend(p for p in self.tail_index.get(key, ()) if live[p])
        return found

    def packed(self) -> npt.NDArray[np.uint8]:
        """Every position's keys in the saved packing (see `pack_strings`)."""
        tail = ["\x1f".join(keys) for keys in self.tail]
        if self.base_n == 0:
            return pack_strings(tail)
        if not tail:
            return self.blob.copy()
        return np.concatenate([self.blob, np.frombuffer(b"\n", np.uint8), pack_strings(tail)])

    def compact(self, live: BoolArray) -> None:
        """Fold the appended positions into the base and file the live ones anew."""
        if self.tail:
            self.load(self.packed())
        self.file_live(live)


class Vocabulary:
    """Term ids, in the order terms were first seen.

    The terms known at load (or at the last rebuild) sit in one sorted fixed-width
    byte array beside their ids, and a query's distinct words are bisected in one
    call; terms added since, and the rare very long ones, sit in a dict. A dict of
    every term (a string and an int object each) costs five times the array.
    """

    WIDTH_CAP = 24  # bytes; longer terms stay in the dict rather than widen every row

    def __init__(self) -> None:
        self.sorted_terms: npt.NDArray[np.bytes_] = np.empty(0, dtype="S1")
        self.sorted_ids: npt.NDArray[np.int32] = np.empty(0, dtype=np.int32)
        self.extra: dict[str, int] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def load(self, packed: npt.NDArray[np.uint8]) -> None:
        """Terms by id, packed as `pack_strings` packs them (a later duplicate wins, as
        in a dict built from them). Read straight from the bytes: a string object per
        term, even a passing one, leaves the heap fragmented."""
        packed.tobytes().decode()  # refuse what `unpack_strings` refuses
        starts, lengths = segments(packed, ord("\n"))
        short = lengths <= self.WIDTH_CAP
        ids = np.flatnonzero(short)
        width = max(int(lengths[short].max()) if ids.shape[0] else 1, 1)
        table = fixed_width(packed, starts[short], lengths[short], width)
        order = np.argsort(table, kind="stable")
        self.sorted_terms = table[order]
        self.sorted_ids = ids[order].astype(np.int32)
        self.extra = {
            packed[a : a + n].tobytes().decode(): i
            for i, a, n in zip(
                np.flatnonzero(~short).tolist(),
                starts[~short].tolist(),
                lengths[~short].tolist(),
                strict=True,
            )
        }
        self.size = int(starts.shape[0])

    def find(self, terms: list[str]) -> list[int]:
        """Ids of distinct `terms` (-1 where unknown)."""
        found = [self.extra.get(t, -1) for t in terms]
        table = self.sorted_terms
        if table.shape[0] == 0 or not terms:
            return found
        width = table.dtype.itemsize
        encoded = [t.encode() for t in terms]
        fits = [i for i, e in enumerate(encoded) if len(e) <= width]
        probe = np.array([encoded[i] for i in fits], dtype=table.dtype)
        at = np.searchsorted(table, probe, side="right") - 1
        safe = np.maximum(at, 0)
        hit = (at >= 0) & (table[safe] == probe)
        for i, tid in zip(fits, np.where(hit, self.sorted_ids[safe], -1).tolist(), strict=True):
            if tid >= 0:
                found[i] = tid
        return found

    def ids(self, terms: list[str]) -> list[int]:
        """Ids of `terms`, new ones numbered in order of first occurrence."""
        distinct = list(dict.fromkeys(terms))
        mapping: dict[str, int] = {}
        for term, tid in zip(distinct, self.find(distinct), strict=True):
            if tid < 0:
                tid = self.extra[term] = self.size
                self.size += 1
            mapping[term] = tid
        return [mapping[t] for t in terms]

    def in_order(self) -> list[str]:
        """Every term, by id."""
        out = [""] * self.size
        for raw, tid in zip(self.sorted_terms.tolist(), self.sorted_ids.tolist(), strict=True):
            out[tid] = raw.decode()
        for term, tid in self.extra.items():
            out[tid] = term
        return out

    def compact(self) -> None:
        """Fold the terms added since into the sorted array."""
        if len(self.extra) > 0:
            self.load(pack_strings(self.in_order()))


def segments(packed: npt.NDArray[np.uint8], separator: int) -> tuple[IntArray, IntArray]:
    """Start and length of each separated segment of `packed` (none when it is empty,
    as `unpack_strings` reads it)."""
    if packed.shape[0] == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    breaks = np.flatnonzero(packed == separator).astype(np.int64)
    starts = np.concatenate([[0], breaks + 1]).astype(np.int64)
    ends = np.concatenate([breaks, [packed.shape[0]]]).astype(np.int64)
    return starts, ends - starts


def fixed_width(
    packed: npt.NDArray[np.uint8], starts: IntArray, lengths: IntArray, width: int
) -> npt.NDArray[np.bytes_]:
    """The byte strings packed[start : start + length] as one fixed-width array."""
    rows = np.zeros((starts.shape[0], width), dtype=np.uint8)
    owner = np.repeat(np.arange(starts.shape[0], dtype=np.int64), lengths)
    column = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths
    )
    rows[owner, column] = packed[np.repeat(starts, lengths) + column]
    return rows.view(f"S{width}").reshape(starts.shape[0])


def distinct_per_owner(owner: IntArray, terms: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Each owner's distinct terms, concatenated (what a per-owner union gives)."""
    if terms.shape[0] == 0:
        return np.empty(0, dtype=np.int32)
    width = int(terms.max()) + 1
    pairs = np.sort(owner * width + terms.astype(np.int64))
    first = np.empty(pairs.shape[0], dtype=np.bool_)  # np.unique hashes: 10x slower here
    first[0] = True
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    return (pairs[first] % width).astype(np.int32)


def concat(parts: Sequence[npt.NDArray[np.generic]], dtype: type) -> npt.NDArray[np.generic]:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


def pack_strings(values: list[str]) -> npt.NDArray[np.uint8]:
    return np.frombuffer("\n".join(v.replace("\n", " ") for v in values).encode(), np.uint8)


def unpack_strings(packed: npt.NDArray[np.generic]) -> list[str]:
    text = bytes(np.asarray(packed, dtype=np.uint8)).decode()
    return text.split("\n") if text else []
