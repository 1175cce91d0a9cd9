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

Everything a loaded index holds is a handful of flat arrays (postings, sorted
vocabulary, packed title keys) plus a small tail of what was appended since the
last rebuild: the 36k-film catalog costs ~18 MB resident, where a Python object
per row, key and term cost ~67 MB.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import Stemmer

from metamedia.engine.lexical_arrays import (
    K1,
    BoolArray,
    FloatArray,
    Growing,
    IntArray,
    PostingField,
    TitleKeys,
    Vocabulary,
    distinct_per_owner,
    pack_strings,
    unpack_strings,
)
from metamedia.engine.titles import fold, title_keys

MAX_QUERY_TERMS = 256  # distinct stems scored per query (an 8,000-character request has ~500)
DELTA_LIMIT = 4096  # appended positions kept in side postings before the arrays are rebuilt
STATE_FORMAT = 3  # bumped when the saved layout or the title keys change
STEM_CACHE_LIMIT = 50_000  # memoised stems before the memo starts over (was 500,000: ~75 MB)

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
    """Folded, stop-worded, Snowball-stemmed words; stems are memoised (up to
    STEM_CACHE_LIMIT words, ~150 bytes each: a long-running server sees every word of
    every query, and re-stemming a word after a clear costs a microsecond)."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._cache: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(fold(text)) if w not in STOPWORDS and w != "_"]
        cache = self._cache
        if len(cache) > STEM_CACHE_LIMIT:
            # Before `missing` is computed: a clear after it would drop words of this
            # very text that were memoised (a KeyError on the first full catalog).
            cache.clear()
        missing = [w for w in set(words) if w not in cache]
        if missing:
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
        self._vocab = Vocabulary()
        self._title = PostingField()
        self._body = PostingField()
        self._tenants: list[str] = []  # tenant names by code
        self._tenant_code: dict[str, int] = {}
        self._tenant_of = Growing(np.int32)
        self._public = Growing(np.bool_)
        self._live = Growing(np.bool_)
        self._keys = TitleKeys()
        self._stats: dict[str, _TenantStats] = {}
        self._version = 0  # bumped by every removal (appends change the length)
        self._memo: tuple[tuple[str, str, int, int], FloatArray, FloatArray, FloatArray] | None = (
            None
        )

    def __len__(self) -> int:
        return len(self._live)

    # -- writes -------------------------------------------------------------

    def _code(self, tenant: str) -> int:
        code = self._tenant_code.get(tenant)
        if code is None:
            code = self._tenant_code[tenant] = len(self._tenants)
            self._tenants.append(tenant)
        return code

    def append(self, docs: Sequence[LexicalDoc]) -> None:
        """Add documents at the next positions (one per doc, in order)."""
        bulk = len(docs) > DELTA_LIMIT  # postings are rebuilt once at the end instead
        counted: dict[str, list[int]] = {}
        for doc in docs:
            pos = len(self._live)
            self._title.append(
                pos, self._vocab.ids(self.analyzer.terms(" ".join(doc.titles))), not bulk
            )
            body_terms = self.analyzer.terms(" ".join((*doc.titles, doc.body)))
            self._body.append(pos, self._vocab.ids(body_terms), not bulk)
            self._tenant_of.append(self._code(doc.tenant))
            self._public.append(doc.public)
            self._live.append(True)
            self._keys.append(pos, _doc_title_keys(doc.titles))
            if doc.public:
                counted.setdefault(doc.tenant, []).append(pos)
        for tenant, positions in counted.items():
            self._count(tenant, positions, +1)
        if len(self._live) - self._body.base_n > DELTA_LIMIT or bulk:
            self._rebuild()

    def _rebuild(self) -> None:
        """Fold everything appended since the last rebuild into the compact bases."""
        self._title.rebuild_postings(len(self._vocab))
        self._body.rebuild_postings(len(self._vocab))
        self._vocab.compact()
        self._keys.compact(np.asarray(self._live.view, dtype=np.bool_))

    def _count(self, tenant: str, positions: Sequence[int] | IntArray, sign: int) -> None:
        """Count (sign=+1) or uncount (-1) distinct positions in a tenant's statistics."""
        stats = self._stats.setdefault(tenant, _TenantStats())
        at = np.asarray(positions, dtype=np.int64)
        owner_t, terms_t = self._title.terms_of(at)
        owner_b, terms_b = self._body.terms_of(at)
        distinct = distinct_per_owner(
            np.concatenate([owner_t, owner_b]), np.concatenate([terms_t, terms_b])
        )
        # Lengths are whole numbers: a float64 sum is exact in any order.
        stats.add(
            distinct,
            float(self._title.lengths.view[at].sum(dtype=np.float64)),
            float(self._body.lengths.view[at].sum(dtype=np.float64)),
            sign,
        )
        stats.docs += sign * len(positions)

    def remove(self, positions: Sequence[int]) -> None:
        """Retire positions (their item was updated or deleted)."""
        live = self._live.view
        public = self._public.view
        tenant_of = self._tenant_of.view
        uncount: dict[str, list[int]] = {}
        for pos in positions:
            if 0 <= pos < live.shape[0] and live[pos]:
                live[pos] = False
                if public[pos]:
                    uncount.setdefault(self._tenants[int(tenant_of[pos])], []).append(pos)
        for tenant, gone in uncount.items():
            self._count(tenant, gone, -1)
        self._version += 1

    # -- reads --------------------------------------------------------------

    def title_positions(self, title: str) -> IntArray:
        """Live positions whose title or an alternate title is `title` as written (case,
        accents and punctuation aside); failing that, ignoring a leading article."""
        strict, loose = title_keys(title)
        live = np.asarray(self._live.view, dtype=np.bool_)
        found = self._keys.lookup(f"={strict}", live) or self._keys.lookup(f"~{loose}", live)
        return np.asarray(found, dtype=np.int64)

    def query_terms(self, query: str) -> dict[int, float]:
        """Known query stems with their weight (1 + log of the count in the query)."""
        counts = Counter(self.analyzer.terms(query))  # in order of first occurrence
        ids = self._vocab.find(list(counts))
        return {t: 1.0 + math.log(c) for t, c in zip(ids, counts.values(), strict=True) if t >= 0}

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
        field: PostingField,
        terms: IntArray,
        idf: FloatArray,
        total_len: float,
        docs: int,
        n: int,
    ) -> tuple[FloatArray, FloatArray]:
        """BM25 of every position, and the summed weight of the query words it holds."""
        avg = total_len / docs if docs > 0 else 1.0
        norm = field.norm(max(avg, 1.0))
        pos_parts: list[npt.NDArray[np.int32]] = []
        tf_parts: list[FloatArray] = []
        sizes: list[int] = []
        for term in terms.tolist():
            pos, tf = field.postings(term)
            pos_parts.append(pos)
            tf_parts.append(tf)
            sizes.append(pos.shape[0])
        if not any(sizes):
            zeros = np.zeros(n, dtype=np.float32)
            return zeros, zeros
        # All terms at once: the same float32 operations, element by element, as one
        # term at a time (each weight is a float32 value either way).
        positions = np.concatenate(pos_parts)
        tf = np.concatenate(tf_parts)
        w = np.repeat(idf.astype(np.float32), sizes)
        weights = w * tf * (K1 + 1.0) / (tf + norm[positions])
        scores = np.bincount(positions, weights=weights, minlength=n)
        held = np.bincount(positions, weights=w, minlength=n)
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
        terms = self._vocab.in_order()
        tenants, tenant_of = self._tenant_state()
        out: dict[str, npt.NDArray[np.generic]] = {
            "vocab": pack_strings(terms),
            "tenants": pack_strings(tenants),
            "tenant_of": tenant_of,
            "public": np.asarray(self._public.view, dtype=np.bool_),
            "live": np.asarray(self._live.view, dtype=np.bool_),
            "title_keys": self._keys.packed(),
            "format": np.asarray([STATE_FORMAT], dtype=np.int64),
        }
        for name, field in (("title", self._title), ("body", self._body)):
            indptr, row_terms, tfs = field.rows()
            out[f"{name}_indptr"] = indptr.astype(np.int64)  # copies: the caller owns them
            out[f"{name}_terms"] = row_terms.astype(np.int32)
            out[f"{name}_tf"] = tfs.astype(np.float32)
            out[f"{name}_len"] = np.asarray(field.lengths.view, dtype=np.float32)
        return out

    def _tenant_state(self) -> tuple[list[str], npt.NDArray[np.int32]]:
        """The names of the tenants in use, sorted, and each position's code among them."""
        codes = np.asarray(self._tenant_of.view, dtype=np.int32)
        used = np.unique(codes).tolist()
        tenants = sorted({self._tenants[c] for c in used})
        rank = {t: i for i, t in enumerate(tenants)}
        remap = np.zeros(len(self._tenants), dtype=np.int32)
        for c in used:
            remap[c] = rank[self._tenants[c]]
        return tenants, remap[codes]

    @classmethod
    def from_state(cls, state: dict[str, npt.NDArray[np.generic]]) -> LexicalIndex:
        """The index a `state()` saved (its title-key bytes are kept as they are, not
        copied: the caller must not write to that array afterwards)."""
        if "format" not in state or int(np.asarray(state["format"])[0]) != STATE_FORMAT:
            raise ValueError("lexical index saved in another format; rebuild it")
        index = cls()
        index._vocab.load(np.asarray(state["vocab"], dtype=np.uint8))
        index._load_tenants(unpack_strings(state["tenants"]), state["tenant_of"])
        index._public = Growing(np.bool_, state["public"])
        index._live = Growing(np.bool_, state["live"])
        index._keys.load(np.asarray(state["title_keys"], dtype=np.uint8))
        for name, field in (("title", index._title), ("body", index._body)):
            indptr = np.asarray(state[f"{name}_indptr"], dtype=np.int64)
            end = int(indptr[-1])
            rows = (
                indptr,
                np.asarray(state[f"{name}_terms"], dtype=np.int32)[:end],
                np.asarray(state[f"{name}_tf"], dtype=np.float32)[:end],
            )
            field.load(rows, np.asarray(state[f"{name}_len"], dtype=np.float32), len(index._vocab))
        n = len(index._live)
        if not (len(index._tenant_of) == len(index._keys) == n == len(index._body.lengths)):
            raise ValueError("lexical index arrays disagree in length")
        live = np.asarray(index._live.view, dtype=np.bool_)
        index._keys.file_live(live)
        counted = live & np.asarray(index._public.view, dtype=np.bool_)
        codes = index._tenant_of.view
        for code in np.unique(codes[counted]).tolist():
            positions = np.flatnonzero(counted & (codes == code))
            index._count(index._tenants[code], positions, +1)
        return index

    def _load_tenants(self, tenants: list[str], codes: npt.NDArray[np.generic]) -> None:
        """Tenant names and each position's code (a position holds a small int, not a
        reference to a string)."""
        wide = np.asarray(codes, dtype=np.int64)
        if wide.shape[0] and (int(wide.min()) < 0 or int(wide.max()) >= len(tenants)):
            raise ValueError("lexical index names a tenant it does not list")
        self._tenants = tenants
        self._tenant_code = {t: i for i, t in enumerate(tenants)}
        self._tenant_of = Growing(np.int32, wide)


def _doc_title_keys(titles: tuple[str, ...]) -> tuple[str, ...]:
    """A document's exact-title keys: strict ("=") and loose ("~") of every title, once."""
    return tuple(
        dict.fromkeys(
            k
            for strict, loose in map(title_keys, titles)
            for k in (f"={strict}", f"~{loose}")
            if len(k) > 1
        )
    )


def _no_hits() -> LexicalHits:
    empty = np.empty(0, dtype=np.float32)
    return LexicalHits(np.empty(0, dtype=np.int64), empty, empty)
