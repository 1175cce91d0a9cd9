"""Filter columns: tenant isolation, privacy, and every filter field."""

from __future__ import annotations

from metamedia.engine.payload import AttributeFilter, ItemAttributes, PayloadColumns


def _payload() -> PayloadColumns:
    cols = PayloadColumns(capacity=2)
    cols.append(
        [
            ItemAttributes("movie", "t1", 1995, 4.0, "en", ("crime",), ("netflix",)),
            ItemAttributes("series", "t1", 2010, 3.0, "fr", ("drama", "crime"), ()),
            ItemAttributes("movie", "t2", 1995, 4.5, "en", ("crime",), ("netflix",)),
            ItemAttributes("movie", "t1", None, None, None, (), (), private=True, owner="ana"),
        ]
    )
    return cols


def test_tenant_and_privacy_always_apply() -> None:
    cols = _payload()
    assert cols.mask(AttributeFilter(tenant="t1")).tolist() == [True, True, False, False]
    assert cols.mask(AttributeFilter(tenant="t1", viewer="ana")).tolist()[3] is True
    assert not cols.mask(AttributeFilter(tenant="nobody")).any()


def test_each_filter_field() -> None:
    cols = _payload()
    assert cols.mask(AttributeFilter("t1", types=("series",))).tolist()[:2] == [False, True]
    assert cols.mask(AttributeFilter("t1", genres=("crime",))).tolist()[:2] == [True, True]
    assert cols.mask(AttributeFilter("t1", genres=("drama",))).tolist()[:2] == [False, True]
    assert cols.mask(AttributeFilter("t1", platforms=("netflix",))).tolist()[:2] == [True, False]
    assert cols.mask(AttributeFilter("t1", languages=("fr",))).tolist()[:2] == [False, True]
    assert cols.mask(AttributeFilter("t1", year_min=2000)).tolist()[:2] == [False, True]
    assert cols.mask(AttributeFilter("t1", year_max=2000)).tolist()[:2] == [True, False]
    assert cols.mask(AttributeFilter("t1", min_rating=3.5)).tolist()[:2] == [True, False]
    assert not cols.mask(AttributeFilter("t1", genres=("unknown-genre",))).any()


def test_growing_past_capacity_and_vocabulary() -> None:
    cols = PayloadColumns(capacity=1)
    rows = [ItemAttributes("movie", "t", 2000, 3.0, "en", (f"g{i}",), ()) for i in range(40)]
    cols.append(rows)
    assert len(cols) == 40
    assert cols.mask(AttributeFilter("t", genres=("g39",))).sum() == 1
