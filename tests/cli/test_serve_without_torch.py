"""Serving never imports torch: ONNX inference needs none, and torch costs ~170 MB RSS.

Both checks run the product in a child process, since this test process may
already hold torch (other tests use the sentence-transformers reference):

- `metamedia serve` answers searches in every mode, then its memory map must
  not contain libtorch (read from /proc, no debug endpoint needed);
- a runtime with an empty model cache exports the ONNX file (in a grandchild)
  and searches, then its `sys.modules` must hold none of torch,
  sentence_transformers or transformers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port, wait_until_ready

FORBIDDEN = ("torch", "sentence_transformers", "transformers")


@pytest.mark.slow
def test_serve_process_never_maps_libtorch(demo_data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_data_dir, data)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "metamedia",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(base, proc, 180)
        except BaseException:
            print(log.read_text()[-3000:])
            raise
        for mode in ("hybrid", "semantic", "keyword"):
            response = httpx.get(
                f"{base}/v1/search", params={"q": "haunted house", "mode": mode}, timeout=60
            )
            assert response.status_code == 200, response.text
            assert response.json()["results"]
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        libraries = {line.rsplit("/", 1)[-1] for line in maps.splitlines() if ".so" in line}
        torch_libs = sorted(lib for lib in libraries if "torch" in lib)
        assert not torch_libs, f"the server loaded {torch_libs}"
        assert any("onnxruntime" in lib for lib in libraries), "the check must see real libraries"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


_RUNTIME_SCRIPT = """
import json, sys
from pathlib import Path
import metamedia.api.app, metamedia.cli  # every module `metamedia serve` imports
from metamedia.config import Settings
from metamedia.domain import SearchRequest
from metamedia.services.runtime import Runtime

runtime = Runtime.open(Settings(data_dir=Path(sys.argv[1])))
found = {
    mode: len(runtime.search.search(SearchRequest(query="haunted house", mode=mode)).results)
    for mode in ("hybrid", "semantic", "keyword")
}
runtime.close()
print(json.dumps({
    "found": found,
    "exported": sorted(p.name for p in Path(sys.argv[2]).rglob("*.onnx")),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r),
}))
"""


@pytest.mark.slow
def test_runtime_exports_onnx_in_a_child_and_never_imports_torch(
    demo_data_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_data_dir, data)
    cache = tmp_path / "models"  # empty: the first embedding must export the model
    env = {**os.environ, "METAMEDIA_MODEL_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", _RUNTIME_SCRIPT % (FORBIDDEN,), str(data), str(cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(report["found"].values()), report
    assert report["exported"], "the ONNX export ran and left its file in the cache"
    assert report["loaded"] == [], f"the serving path imported {report['loaded']}"
