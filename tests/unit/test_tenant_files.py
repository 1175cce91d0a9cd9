"""Per-tenant model files never collide (issue 11: `acme.com`, `acme_com` and
`acme/com` shared one themes file, so training one overwrote the others)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metamedia.storage.model_files import ModelStore, Themes
from metamedia.storage.tenant_names import tenant_key

LOOKALIKES = ("acme.com", "acme_com", "acme/com", "ACME.com", "acme%2Fcom", "..", "default")


def _themes(label: str) -> Themes:
    return Themes(
        centroids=np.ones((1, 4), dtype=np.float32),
        labels=[[label]],
        keys=np.array([1], dtype=np.int64),
        assignment=np.array([0], dtype=np.int64),
    )


def test_lookalike_tenants_get_distinct_plain_file_names() -> None:
    keys = [tenant_key(t) for t in LOOKALIKES]
    assert len(set(keys)) == len(LOOKALIKES)
    assert len({k.lower() for k in keys}) == len(LOOKALIKES)  # case-insensitive disks too
    assert all("/" not in k and k not in (".", "..") for k in keys)
    assert tenant_key("default").startswith("default.")


def test_training_one_tenant_does_not_overwrite_another(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for tenant in LOOKALIKES:
        store.save_themes(tenant, _themes(f"themes of {tenant}"))
    assert len(list(tmp_path.glob("themes-*.npz"))) == len(LOOKALIKES)
    for tenant in LOOKALIKES:
        loaded = store.load_themes(tenant)
        assert loaded is not None and loaded.labels == [[f"themes of {tenant}"]]
    store.remove("acme.com")
    assert store.load_themes("acme.com") is None
    kept = store.load_themes("acme_com")
    assert kept is not None and kept.labels == [["themes of acme_com"]]
    assert list(tmp_path.iterdir())  # nothing outside the directory was written
    assert all(p.parent == tmp_path for p in tmp_path.rglob("*"))


def test_files_an_older_version_wrote_unambiguously_are_still_read(tmp_path: Path) -> None:
    ModelStore(tmp_path).save_themes("old", _themes("current"))
    (tmp_path / f"themes-{tenant_key('old')}.npz").rename(tmp_path / "themes-default.npz")
    store = ModelStore(tmp_path)
    legacy = store.load_themes("default")
    assert legacy is not None and legacy.labels == [["current"]]
    # `acme_com` may have been written by `acme.com` before: never read as either.
    (tmp_path / "themes-default.npz").rename(tmp_path / "themes-acme_com.npz")
    assert store.load_themes("acme_com") is None and store.load_themes("acme.com") is None
