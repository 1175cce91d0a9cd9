"""In-memory BM25 over two fields (titles, body), positions aligned with the vectors.

Why not FTS5's bm25(): on this catalog an OR query of the 50-odd words of a
real "tip of the tongue" request takes hundreds of milliseconds in SQLite,
because bm25() is evaluated row by row through the virtual-table interface.
The old answer was to drop frequent words, and that lost titles ("Star Wars":
"star" is in most leads, "it stars ..."). Here every query word is scored:
postings are numpy arrays, one `bincount` adds up every term at once, and the
cost grows with the postings touched (a few milliseconds for a long request),
not with a pruning guess.

Statistics are per tenant and count public documents only (document
frequencies, document counts, average lengths), so one tenant's words, or a
private item's, never change another tenant's ranking or reveal that a word
exists. Private items are still scored, with their tenant's public statistics.

Positions are appended in the same order as the vector index's, so the
payload filter mask over vector positions applies here unchanged.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import Stemmer

from metamedia.engine.titles import fold, title_keys

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

K1 = 1.2
B = 0.75
MAX_QUERY_TERMS = 256  # distinct stems scored per query (an 8,000-character request has ~500)
DELTA_LIMIT = 4096  # appended positions kept in side postings before the arrays are rebuilt
STATE_FORMAT = 3  # bumped when the saved layout or the title keys change

STOPWORDS = frozenset(
    (
        "a about above after again against all am an and any are aren as at be because been "
        "before being below between both but by can could did do does doing don down during "
        "each few for from further had has have having he her here hers herself him himself "
        "his how i if in into is isn it its itself just me more most my myself no nor not now "
        "of off on once only or other our ours ourselves out over own same she should so some "
        "such than that the their theirs them themselves then there these they this those "
        "through to too under until up very was we were what when where which while who whom "
        "why will with would you your yours yourself yourselves s t"
    ).split()
)
_TOKEN = re.compile(r"\w+", re.UNICODE)


class Analyzer:
    """Folded, stop-worded, Snowball-stemmed words; stems are memoised."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._cache: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(fold(text)) if w not in STOPWORDS and w != "_"]
        cache = self._cache
        missing = [w for w in set(words) if w not in cache]
        if missing:
            if len(cache) > 500_000:
                cache.clear()
            cache.update(zip(missing, self._stemmer.stemWords(missing), strict=True))
        return [cache[w] for w in words]


@dataclass(frozen=True)
class LexicalDoc:
    """What the keyword side reads of one item."""

    tenant: str
    public: bool
    titles: tuple[str, ...]
    body: str


@dataclass(frozen=True)
class LexicalHits:
    """Positions with their title and body BM25 scores, best body score first."""

    positions: IntArray
    title_scores: FloatArray
    body_scores: FloatArray


class _Field:
    """Forward rows and postings of one field."""

    def __init__(self) -> None:
        self.rows_terms: list[npt.NDArray[np.int32]] = []
        self.rows_tf: list[npt.NDArray[np.float32]] = []
        self.lengths = _Growing(np.float32)
        self.base_n = 0
        self.indptr: IntArray = np.zeros(1, dtype=np.int64)
        self.post_pos: npt.NDArray[np.int32] = np.empty(0, dtype=np.int32)
        self.post_tf: FloatArray = np.empty(0, dtype=np.float32)
        self.delta: dict[int, list[tuple[int, float]]] = {}

    def append(self, pos: int, terms: list[int], index_delta: bool) -> npt.NDArray[np.int32]:
        counts = Counter(terms)
        ids = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
        tfs = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        self.rows_terms.append(ids)
        self.rows_tf.append(tfs)
        self.lengths.append(float(len(terms)))
        if index_delta:
            delta = self.delta
            for term, tf in counts.items():
                delta.setdefault(term, []).append((pos, float(tf)))
        return ids

    def rebuild_postings(self, vocab_size: int) -> None:
        n = len(self.rows_terms)
        sizes = np.fromiter((r.shape[0] for r in self.rows_terms), dtype=np.int64, count=n)
        terms = np.concatenate(self.rows_terms) if n else np.empty(0, dtype=np.int32)
        tfs = np.concatenate(self.rows_tf) if n else np.empty(0, dtype=np.float32)
        positions = np.repeat(np.arange(n, dtype=np.int32), sizes)
        order = np.argsort(terms, kind="stable")
        self.post_pos = positions[order]
        self.post_tf = tfs[order]
        counts = np.bincount(terms, minlength=vocab_size)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.base_n = n
        self.delta = {}

    def postings(self, term: int) -> tuple[npt.NDArray[np.int32], FloatArray]:
        if term + 1 < self.indptr.shape[0]:
            lo, hi = int(self.indptr[term]), int(self.indptr[term + 1])
            pos, tf = self.post_pos[lo:hi], self.post_tf[lo:hi]
        else:
            pos, tf = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
        extra = self.delta.get(term)
        if extra:
            pos = np.concatenate([pos, np.fromiter((p for p, _ in extra), dtype=np.int32)])
            tf = np.concatenate([tf, np.fromiter((t for _, t in extra), dtype=np.float32)])
        return pos, tf


class _Growing:
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


class _TenantStats:
    """Public-document statistics of one tenant: what BM25's IDF and length norm read."""

    def __init__(self) -> None:
        self.docs = 0
        self.title_len = 0.0
        self.body_len = 0.0
        self.df: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)

    def add(
        self, terms: npt.NDArray[np.int32], title_len: float, body_len: float, sign: int
    ) -> None:
        """Count (sign=+1) or uncount (-1) documents whose distinct terms are `terms`
        (concatenated when several documents are counted at once)."""
        if terms.shape[0]:
            needed = int(terms.max()) + 1
            if needed > self.df.shape[0]:
                grown = np.zeros(max(needed, 2 * self.df.shape[0]), dtype=np.int32)
                grown[: self.df.shape[0]] = self.df
                self.df = grown
            counts = np.bincount(terms, minlength=needed).astype(np.int32)
            self.df[:needed] += sign * counts
        self.title_len += sign * title_len
        self.body_len += sign * body_len

    def idf(self, terms: npt.NDArray[np.int64]) -> FloatArray:
        df = np.zeros(terms.shape[0], dtype=np.float64)
        known = terms < self.df.shape[0]
        df[known] = self.df[terms[known]]
        n = float(max(self.docs, 0))
        return np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)


class LexicalIndex:
    """BM25 (title and body fields) with exact-title lookup, addressed by position."""

    def __init__(self) -> None:
        self.analyzer = Analyzer()
        self._vocab: dict[str, int] = {}
        self._title = _Field()
        self._body = _Field()
        self._tenant_of: list[str] = []
        self._public = _Growing(np.bool_)
        self._live = _Growing(np.bool_)
        self._title_keys: list[tuple[str, ...]] = []
        self._titles: dict[str, list[int]] = {}
        self._stats: dict[str, _TenantStats] = {}
        self._version = 0  # bumped by every removal (appends change the length)
        self._memo: tuple[tuple[str, str, int, int], FloatArray, FloatArray, FloatArray] | None = (
            None
        )

    def __len__(self) -> int:
        return len(self._live)

    # -- writes -------------------------------------------------------------

    def _ids(self, terms: list[str]) -> list[int]:
        vocab = self._vocab
        out = []
        for term in terms:
            tid = vocab.get(term)
            if tid is None:
                tid = vocab[term] = len(vocab)
            out.append(tid)
        return out

    def append(self, docs: Sequence[LexicalDoc]) -> None:
        """Add documents at the next positions (one per doc, in order)."""
        bulk = len(docs) > DELTA_LIMIT  # postings are rebuilt once at the end instead
        counted: dict[str, list[int]] = {}
        for doc in docs:
            pos = len(self._live)
            self._title.append(pos, self._ids(self.analyzer.terms(" ".join(doc.titles))), not bulk)
            body_terms = self.analyzer.terms(" ".join((*doc.titles, doc.body)))
            self._body.append(pos, self._ids(body_terms), not bulk)
            self._tenant_of.append(doc.tenant)
            self._public.append(doc.public)
            self._live.append(True)
            keys = tuple(
                dict.fromkeys(
                    k
                    for strict, loose in map(title_keys, doc.titles)
                    for k in (f"={strict}", f"~{loose}")
                    if len(k) > 1
                )
            )
            self._title_keys.append(keys)
            for key in keys:
                self._titles.setdefault(key, []).append(pos)
            if doc.public:
                counted.setdefault(doc.tenant, []).append(pos)
        for tenant, positions in counted.items():
            self._count(tenant, positions, +1)
        if len(self._live) - self._body.base_n > DELTA_LIMIT or bulk:
            self._title.rebuild_postings(len(self._vocab))
            self._body.rebuild_postings(len(self._vocab))

    def _count(self, tenant: str, positions: list[int], sign: int) -> None:
        stats = self._stats.setdefault(tenant, _TenantStats())
        distinct = [
            np.union1d(self._title.rows_terms[p], self._body.rows_terms[p]).astype(np.int32)
            for p in positions
        ]
        lengths_t = self._title.lengths.view
        lengths_b = self._body.lengths.view
        stats.add(
            np.concatenate(distinct) if distinct else np.empty(0, dtype=np.int32),
            float(sum(float(lengths_t[p]) for p in positions)),
            float(sum(float(lengths_b[p]) for p in positions)),
            sign,
        )
        stats.docs += sign * len(positions)

    def remove(self, positions: Sequence[int]) -> None:
        """Retire positions (their item was updated or deleted)."""
        live = self._live.view
        public = self._public.view
        uncount: dict[str, list[int]] = {}
        for pos in positions:
            if 0 <= pos < live.shape[0] and live[pos]:
                live[pos] = False
                if public[pos]:
                    uncount.setdefault(self._tenant_of[pos], []).append(pos)
                for key in self._title_keys[pos]:
                    holders = self._titles.get(key)
                    if holders is not None and pos in holders:
                        holders.remove(pos)
                        if not holders:
                            del self._titles[key]
        for tenant, gone in uncount.items():
            self._count(tenant, gone, -1)
        self._version += 1

    # -- reads --------------------------------------------------------------

    def title_positions(self, title: str) -> IntArray:
        """Live positions whose title or an alternate title is `title` as written (case,
        accents and punctuation aside); failing that, ignoring a leading article."""
        strict, loose = title_keys(title)
        found = self._titles.get(f"={strict}") or self._titles.get(f"~{loose}") or []
        return np.asarray(found, dtype=np.int64)

    def query_terms(self, query: str) -> dict[int, float]:
        """Known query stems with their weight (1 + log of the count in the query)."""
        counts: dict[int, int] = {}
        for term in self.analyzer.terms(query):
            tid = self._vocab.get(term)
            if tid is not None:
                counts[tid] = counts.get(tid, 0) + 1
        return {t: 1.0 + math.log(c) for t, c in counts.items()}

    def score_all(self, query: str, tenant: str) -> tuple[FloatArray, FloatArray]:
        """Title and body BM25 of every position (zero where no query word occurs).

        The last answer is remembered: hybrid search asks once for its top-k and
        again for the scores of the vector side's candidates.
        """
        title, body, _ = self._scored(query, tenant)
        return title, body

    def _scored(self, query: str, tenant: str) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Title BM25, body BM25 and coverage: the share of the query's weight (IDF x
        count in the query) whose words each document holds, i.e. how much of a
        description a film accounts for, not how often it repeats one word."""
        memo_key = (query, tenant, len(self._live), self._version)
        if self._memo is not None and self._memo[0] == memo_key:
            return self._memo[1], self._memo[2], self._memo[3]
        n = len(self._live)
        weights = self.query_terms(query)
        if not weights or n == 0:
            zeros = np.zeros(n, dtype=np.float32)
            return zeros, zeros, zeros
        stats = self._stats.get(tenant) or _TenantStats()
        terms = np.fromiter(weights, dtype=np.int64)
        qw = np.fromiter(weights.values(), dtype=np.float32)
        idf = stats.idf(terms) * qw
        if terms.shape[0] > MAX_QUERY_TERMS:
            keep = np.argsort(-idf, kind="stable")[:MAX_QUERY_TERMS]
            terms, idf = terms[keep], idf[keep]
        title, _ = self._field_scores(self._title, terms, idf, stats.title_len, stats.docs, n)
        body, held = self._field_scores(self._body, terms, idf, stats.body_len, stats.docs, n)
        total = float(idf.sum())
        coverage = (held / total).astype(np.float32) if total > 0 else held
        self._memo = (memo_key, title, body, coverage)
        return title, body, coverage

    def search(
        self, query: str, tenant: str, k: int, allowed: BoolArray | None = None
    ) -> LexicalHits:
        """Top-k positions by whole-document BM25 among `allowed` live ones (the body
        field holds the titles too; the title field's own score is a ranker feature)."""
        n = len(self._live)
        if n == 0 or k <= 0:
            return _no_hits()
        title, body = self.score_all(query, tenant)
        total = body.copy()
        live = np.asarray(self._live.view, dtype=np.bool_)
        mask = live if allowed is None else live & allowed[:n]
        total[~mask] = 0.0
        candidates = np.flatnonzero(total > 0)
        if candidates.shape[0] > k:
            part = np.argpartition(-total[candidates], k - 1)[:k]
            candidates = candidates[part]
        order = np.argsort(-total[candidates], kind="stable")
        best = candidates[order].astype(np.int64)
        return LexicalHits(best, title[best], body[best])

    def _field_scores(
        self,
        field: _Field,
        terms: IntArray,
        idf: FloatArray,
        total_len: float,
        docs: int,
        n: int,
    ) -> tuple[FloatArray, FloatArray]:
        """BM25 of every position, and the summed weight of the query words it holds."""
        avg = total_len / docs if docs > 0 else 1.0
        avg = max(avg, 1.0)
        lengths = np.asarray(field.lengths.view, dtype=np.float32)
        norm = K1 * (1.0 - B + B * lengths / avg)
        pos_parts: list[npt.NDArray[np.int32]] = []
        weight_parts: list[FloatArray] = []
        held_parts: list[FloatArray] = []
        for term, w in zip(terms.tolist(), idf.tolist(), strict=True):
            pos, tf = field.postings(term)
            if pos.shape[0]:
                pos_parts.append(pos)
                weight_parts.append(w * tf * (K1 + 1.0) / (tf + norm[pos]))
                held_parts.append(np.full(pos.shape[0], w, dtype=np.float32))
        if not pos_parts:
            zeros = np.zeros(n, dtype=np.float32)
            return zeros, zeros
        positions = np.concatenate(pos_parts)
        scores = np.bincount(positions, weights=np.concatenate(weight_parts), minlength=n)
        held = np.bincount(positions, weights=np.concatenate(held_parts), minlength=n)
        return scores[:n].astype(np.float32), held[:n].astype(np.float32)

    def scores_at(
        self, query: str, tenant: str, positions: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Title BM25, body BM25 and coverage of given positions (0 outside the index):
        the keyword features of candidates, whichever list found them."""
        title, body, coverage = self._scored(query, tenant)
        valid = (positions >= 0) & (positions < title.shape[0])
        safe = np.where(valid, positions, 0)

        def at(column: FloatArray) -> FloatArray:
            return np.where(valid, column[safe], 0.0).astype(np.float32)

        return at(title), at(body), at(coverage)

    def body_length_at(self, tenant: str, positions: IntArray) -> FloatArray:
        """log(body length / the tenant's mean body length) of given positions (0
        outside the index or for a tenant without public documents).

        How much a catalog says about an item is a prior on how well known it is:
        people mostly look for films they have heard of, and those have the longer
        write-ups and credit lists. The ranker learns how much to trust it.
        """
        stats = self._stats.get(tenant)
        lengths = self._body.lengths.view
        valid = (positions >= 0) & (positions < lengths.shape[0])
        if stats is None or stats.docs <= 0 or stats.body_len <= 0:
            return np.zeros(positions.shape[0], dtype=np.float32)
        mean = stats.body_len / stats.docs
        at = np.where(valid, lengths[np.where(valid, positions, 0)], mean)
        return np.log((1.0 + at) / (1.0 + mean)).astype(np.float32)

    # -- persistence --------------------------------------------------------

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        terms = sorted(self._vocab, key=self._vocab.__getitem__)
        tenants = sorted(set(self._tenant_of))
        tenant_code = {t: i for i, t in enumerate(tenants)}
        out: dict[str, npt.NDArray[np.generic]] = {
            "vocab": _pack_strings(terms),
            "tenants": _pack_strings(tenants),
            "tenant_of": np.asarray([tenant_code[t] for t in self._tenant_of], dtype=np.int32),
            "public": np.asarray(self._public.view, dtype=np.bool_),
            "live": np.asarray(self._live.view, dtype=np.bool_),
            "title_keys": _pack_strings(["\x1f".join(keys) for keys in self._title_keys]),
            "format": np.asarray([STATE_FORMAT], dtype=np.int64),
        }
        for name, field in (("title", self._title), ("body", self._body)):
            sizes = [r.shape[0] for r in field.rows_terms]
            out[f"{name}_indptr"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            out[f"{name}_terms"] = _concat(field.rows_terms, np.int32)
            out[f"{name}_tf"] = _concat(field.rows_tf, np.float32)
            out[f"{name}_len"] = np.asarray(field.lengths.view, dtype=np.float32)
        return out

    @classmethod
    def from_state(cls, state: dict[str, npt.NDArray[np.generic]]) -> LexicalIndex:
        if "format" not in state or int(np.asarray(state["format"])[0]) != STATE_FORMAT:
            raise ValueError("lexical index saved in another format; rebuild it")
        index = cls()
        vocab = _unpack_strings(state["vocab"])
        index._vocab = {t: i for i, t in enumerate(vocab)}
        tenants = _unpack_strings(state["tenants"])
        index._tenant_of = [tenants[int(c)] for c in np.asarray(state["tenant_of"]).tolist()]
        index._public = _Growing(np.bool_, state["public"])
        index._live = _Growing(np.bool_, state["live"])
        index._title_keys = [
            tuple(k for k in packed.split("\x1f") if k)
            for packed in _unpack_strings(state["title_keys"])
        ]
        for name, field in (("title", index._title), ("body", index._body)):
            indptr = np.asarray(state[f"{name}_indptr"], dtype=np.int64)
            terms = np.asarray(state[f"{name}_terms"], dtype=np.int32)
            tfs = np.asarray(state[f"{name}_tf"], dtype=np.float32)
            field.rows_terms = [terms[a:b] for a, b in itertools.pairwise(indptr)]
            field.rows_tf = [tfs[a:b] for a, b in itertools.pairwise(indptr)]
            field.lengths = _Growing(np.float32, state[f"{name}_len"])
            field.rebuild_postings(len(vocab))
        n = len(index._live)
        if not (len(index._tenant_of) == len(index._title_keys) == n == len(index._body.lengths)):
            raise ValueError("lexical index arrays disagree in length")
        live, public = index._live.view, index._public.view
        counted: dict[str, list[int]] = {}
        for pos in np.flatnonzero(live).tolist():
            for key in index._title_keys[pos]:
                index._titles.setdefault(key, []).append(pos)
            if public[pos]:
                counted.setdefault(index._tenant_of[pos], []).append(pos)
        for tenant, positions in counted.items():
            index._count(tenant, positions, +1)
        return index


def _no_hits() -> LexicalHits:
    empty = np.empty(0, dtype=np.float32)
    return LexicalHits(np.empty(0, dtype=np.int64), empty, empty)


def _concat(parts: Sequence[npt.NDArray[np.generic]], dtype: type) -> npt.NDArray[np.generic]:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


def _pack_strings(values: list[str]) -> npt.NDArray[np.uint8]:
    return np.frombuffer("\n".join(v.replace("\n", " ") for v in values).encode(), np.uint8)


def _unpack_strings(packed: npt.NDArray[np.generic]) -> list[str]:
    text = bytes(np.asarray(packed, dtype=np.uint8)).decode()
    return text.split("\n") if text else []
