"""Float-row sidecars of the compressed index: appended on save, mapped on load, checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.vectors import normalize
from metamedia.storage.float_rows import ROW_DTYPE
from metamedia.storage.vector_files import VectorFileStore

DIM = 32


def _vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, DIM))
    return normalize(centres[rng.integers(0, 20, n)] + 0.4 * rng.normal(size=(n, DIM)))


def _sq8(n: int, seed: int = 0) -> VectorIndex:
    index = VectorIndex(DIM, IndexParams(kind="hnsw_sq8"))
    index.upsert(np.arange(n), _vectors(n, seed))
    return index


def _sidecars(directory: Path, name: str = "items") -> list[Path]:
    return sorted(directory.glob(f"vectors.{name}.*.f32"))


def _results(index: VectorIndex, queries: np.ndarray) -> list[list[int]]:
    allowed = np.arange(index.positions) % 7 == 0
    plain = [index.search(q, 10).keys.tolist() for q in queries]
    masked = [index.search(q, 10, allowed).keys.tolist() for q in queries]
    return plain + masked


def test_round_trip_maps_the_rows_and_answers_identically(tmp_path: Path) -> None:
    index, passages = _sq8(3000), _sq8(5000, seed=1)
    index.remove([5, 6])
    store = VectorFileStore(tmp_path)
    store.save(index, 42, "model-x", {"owner": np.arange(3)}, {"pas": passages})
    (items_file,) = _sidecars(tmp_path)
    (pas_file,) = _sidecars(tmp_path, "pas")
    assert items_file.stat().st_size == 3000 * DIM * 4
    assert pas_file.stat().st_size == 5000 * DIM * 4

    loaded = VectorFileStore(tmp_path).load(0.05, companions=("pas",))
    assert loaded is not None and loaded.watermark == 42 and loaded.model == "model-x"
    assert set(loaded.extra) == {"owner"} and set(loaded.companions) == {"pas"}
    for before, after in ((index, loaded.index), (passages, loaded.companions["pas"])):
        rows = after.float_rows
        assert rows is not None and rows.tail_bytes == 0 and rows.base_rows == before.positions
        assert not np.asarray(rows.rows(0, 1)).flags.writeable  # a read-only file mapping
        assert after.kind == "hnsw_sq8" and len(after) == len(before)
        queries = _vectors(20, seed=9)
        assert _results(after, queries) == _results(before, queries)
        np.testing.assert_array_equal(np.asarray(after.vectors()), np.asarray(before.vectors()))


def test_save_maps_a_fresh_index_rows_and_frees_the_tail(tmp_path: Path) -> None:
    index = _sq8(2000)
    rows = index.float_rows
    assert rows is not None and rows.tail_bytes > 0
    VectorFileStore(tmp_path).save(index, 1, "m")
    assert rows.tail_bytes == 0 and rows.base_rows == 2000
    assert index.search(_vectors(1, 3)[0], 5).keys.shape[0] == 5


def test_incremental_save_appends_only_new_rows(tmp_path: Path) -> None:
    store = VectorFileStore(tmp_path)
    store.save(_sq8(10), 0, "m")  # another index first: its file must not be appended to
    index = _sq8(2000)
    store.save(index, 1, "m")
    (path,) = _sidecars(tmp_path)
    first = path.read_bytes()
    inode = path.stat().st_ino

    extra = _vectors(300, seed=5)
    index.upsert(np.arange(5000, 5300), extra)
    index.upsert([7], extra[:1])  # a replacement appends a row too
    store.save(index, 2, "m")
    assert _sidecars(tmp_path) == [path] and path.stat().st_ino == inode  # same file
    grown = path.read_bytes()
    assert len(grown) == 2301 * DIM * 4
    assert grown[: len(first)] == first  # earlier rows untouched
    tail = np.frombuffer(grown[len(first) :], dtype=ROW_DTYPE).reshape(-1, DIM)
    np.testing.assert_array_equal(tail, np.vstack([extra, extra[:1]]))

    store.save(index, 3, "m")  # nothing new: nothing written
    assert path.read_bytes() == grown

    # A load and more upserts keep appending to the same file.
    reloaded = VectorFileStore(tmp_path).load(0.05)
    assert reloaded is not None
    reloaded.index.upsert([9000], extra[1:2])
    second = VectorFileStore(tmp_path)
    second.save(reloaded.index, 4, "m")
    assert path.stat().st_ino == inode and path.stat().st_size == 2302 * DIM * 4


def test_renumbered_positions_go_to_a_new_file(tmp_path: Path) -> None:
    store = VectorFileStore(tmp_path)
    store.save(_sq8(1000), 1, "m")
    (old,) = _sidecars(tmp_path)
    store.save(_sq8(800, seed=2), 2, "m")  # a rebuild: a new index object
    (new,) = _sidecars(tmp_path)
    assert new != old and not old.exists()
    loaded = store.load(0.05)
    assert loaded is not None and loaded.index.positions == 800


@pytest.mark.parametrize("damage", ["truncate", "remove", "overwrite"])
def test_a_damaged_sidecar_fails_the_load(tmp_path: Path, damage: str) -> None:
    VectorFileStore(tmp_path).save(_sq8(1000), 1, "m")
    (path,) = _sidecars(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) - DIM * 4])
    elif damage == "remove":
        path.unlink()
    else:
        path.write_bytes(np.zeros(1000 * DIM, dtype=ROW_DTYPE).tobytes())
    assert VectorFileStore(tmp_path).load(0.05) is None


def test_a_damaged_companion_sidecar_fails_the_load(tmp_path: Path) -> None:
    VectorFileStore(tmp_path).save(_sq8(100), 1, "m", companions={"pas": _sq8(1000)})
    (path,) = _sidecars(tmp_path, "pas")
    path.write_bytes(path.read_bytes()[:100])
    assert VectorFileStore(tmp_path).load(0.05, companions=("pas",)) is None


def test_rows_past_the_recorded_count_are_ignored_then_replaced(tmp_path: Path) -> None:
    """A crash between appending and renaming the npz leaves rows the npz does not name."""
    index = _sq8(500)
    VectorFileStore(tmp_path).save(index, 1, "m")
    (path,) = _sidecars(tmp_path)
    with open(path, "ab") as handle:
        handle.write(np.ones(3 * DIM, dtype=ROW_DTYPE).tobytes())
    loaded = VectorFileStore(tmp_path).load(0.05)
    assert loaded is not None and loaded.index.positions == 500
    loaded.index.upsert([1234], _vectors(1, 4))
    store = VectorFileStore(tmp_path)
    store.save(loaded.index, 2, "m")
    reloaded = store.load(0.05)
    assert reloaded is not None and reloaded.index.positions == 501
    np.testing.assert_array_equal(reloaded.index.vector_of(1234), _vectors(1, 4)[0])


def test_other_kinds_write_no_sidecar_and_clear_old_ones(tmp_path: Path) -> None:
    store = VectorFileStore(tmp_path)
    store.save(_sq8(100), 1, "m")
    assert _sidecars(tmp_path)
    hnsw = VectorIndex(DIM, IndexParams(kind="hnsw"))
    hnsw.upsert(np.arange(100), _vectors(100, 0))
    store.save(hnsw, 2, "m")
    assert not _sidecars(tmp_path)
    loaded = store.load(0.05)
    assert loaded is not None and loaded.index.kind == "hnsw"


def test_processes_following_the_same_changes_share_one_file(tmp_path: Path) -> None:
    """Two loads of one file (two processes) that apply the same upserts in the same
    order append to the same file: the later one finds its rows already there."""
    VectorFileStore(tmp_path).save(_sq8(400), 1, "m")
    (path,) = _sidecars(tmp_path)
    first, second = VectorFileStore(tmp_path), VectorFileStore(tmp_path)
    a, b = first.load(0.05), second.load(0.05)
    assert a is not None and b is not None
    new = _vectors(3, seed=11)
    a.index.upsert([900, 901, 902], new)
    b.index.upsert([900, 901], new[:2])
    first.save(a.index, 2, "m")
    size = path.stat().st_size
    second.save(b.index, 2, "m")  # behind: its rows are a prefix of the file, nothing written
    assert _sidecars(tmp_path) == [path] and path.stat().st_size == size == 403 * DIM * 4
    loaded = VectorFileStore(tmp_path).load(0.05)
    assert loaded is not None and loaded.index.positions == 402
    b.index.upsert([902], new[2:])
    second.save(b.index, 3, "m")  # caught up: the row on file is its own
    assert _sidecars(tmp_path) == [path] and path.stat().st_size == 403 * DIM * 4

    b.index.upsert([903], new[:1])
    a.index.upsert([903], new[1:2])  # diverged: a different row at the same position
    second.save(b.index, 4, "m")
    first.save(a.index, 4, "m")
    (other,) = _sidecars(tmp_path)
    assert other != path  # a's rows went to a new file
    reloaded = VectorFileStore(tmp_path).load(0.05)
    assert reloaded is not None
    np.testing.assert_array_equal(reloaded.index.vector_of(903), new[1])
