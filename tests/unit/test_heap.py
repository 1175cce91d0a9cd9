"""Returning freed heap pages to the OS after big loads and saves."""

from __future__ import annotations

import sys

import pytest

from metamedia.services import heap


def test_release_works_on_glibc_linux() -> None:
    if sys.platform.startswith("linux") and heap._malloc_trim() is not None:
        assert heap.release_free_heap() is True
    else:  # another C library: nothing to call, and no error
        assert heap.release_free_heap() is False


def test_without_a_trim_function_nothing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    try:
        assert heap.release_free_heap() is False
    finally:
        heap._malloc_trim.cache_clear()
