"""One-time export of the MiniLM encoder to ONNX, in its own process.

Serving runs the model on onnxruntime and needs no torch; only this export
does. Importing torch costs a serving process ~170 MB of resident memory for
good (a module is never unloaded), so the export runs as a child interpreter
(by hand: `python -m metamedia.engine.onnx_export MODEL_DIR TARGET`). The
file appears by atomic rename, so concurrent exporters (several workers
starting at once) never read a half-written model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

ONNX_OPSET = 17
ONNX_WEIGHTS_LAYOUT = "external"  # the weights live beside the graph (`_weights_apart`)
ONNX_GRAPH = "fused-v1"  # attention, layer norms and GELU fused (`_fuse_transformer_ops`)
EXPORT_TIMEOUT_S = 900.0
_CHILD = "import sys; from metamedia.engine.onnx_export import main; sys.exit(main(sys.argv[1:]))"


def offline_environment() -> None:
    """Never reach the Hugging Face hub: the weights ship in a package."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def export_onnx(model_dir: Path, target: Path, delta: Path | None = None) -> Path:
    """Export the transformer encoder to `target` in this process (imports torch),
    with the low-rank `delta` (engine/model_delta.py) added to its weights first."""
    offline_environment()
    import torch
    from transformers import AutoModel

    from metamedia.engine.model_delta import apply_delta

    # Eager attention exports the plain matmul-softmax-matmul pattern that
    # onnxruntime's fuser recognises; the SDPA export (NaN guards, `Where`) is not.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    if delta is not None:
        apply_delta(model, delta)

    class _Encoder(torch.nn.Module):
        # Keyword arguments: positional calls mis-bind token_type_ids in recent transformers.
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp-{os.getpid()}")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated but needs no onnxscript; it is what we pin.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Encoder(model),
                (sample, sample, torch.zeros_like(sample)),
                str(tmp),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
            )
        _fuse_transformer_ops(tmp, model.config.num_attention_heads, model.config.hidden_size)
        _weights_apart(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _fuse_transformer_ops(path: Path, heads: int, hidden: int) -> None:
    """Rewrite the graph at `path` with each layer's attention, residual layer norms
    and GELU as single fused operators (onnxruntime's BERT fusions, no torch needed).

    The model is compute-bound; fused kernels skip the intermediate tensors the
    op-by-op graph writes and reads back. Measured on 2 cores, interleaved runs:
    one 256-token window 23.2 -> 20.0 ms, a 16 x 256 ingest batch 419 -> 339 ms;
    outputs equal the unfused graph within 4e-6 (padded batches included).
    A graph the fuser does not recognise is kept as exported: slower, not wrong.
    """
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(
        str(path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
    )
    onnx.save_model(fused.model, str(path))


def _weights_apart(path: Path) -> None:
    """Rewrite the model at `path` with its weights in a file of their own beside it.

    onnxruntime maps an external weights file instead of copying it onto its heap, so
    the pages a run never reads stay out of the serving process: most of the 47 MB
    word-piece table, of which a query touches a few rows. Measured: 27 MB less
    resident after a run of short and long queries, at the same speed. The weights'
    name is unique to this exporter (its pid), so a second exporter racing it never
    rewrites a file that a finished model already points to.
    """
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{path.stem}.{os.getpid()}.weights",
        size_threshold=1024,
    )


def export_in_subprocess(
    model_dir: Path, target: Path, timeout_s: float = EXPORT_TIMEOUT_S, delta: Path | None = None
) -> Path:
    """Export in a child interpreter so torch never enters the calling process.

    Raises RuntimeError with the child's last output lines when the export fails
    (torch missing from a serving-only install, disk full, ...).
    """
    # `-c`, not `-m`: importing the package already imports this module, and runpy
    # warns about running a module that is already loaded.
    command = [sys.executable, "-c", _CHILD, str(model_dir), str(target)]
    if delta is not None:
        command += ["--delta", str(delta)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"ONNX export of {model_dir} took over {timeout_s:.0f} s") from exc
    if done.returncode != 0 or not target.exists():
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-15:])
        raise RuntimeError(
            f"ONNX export of {model_dir} failed (exit {done.returncode}); it needs torch and "
            f"transformers installed, or a ready file at {target}.\n{tail}"
        )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m metamedia.engine.onnx_export",
        description="Export the sentence encoder to ONNX (used once per model and exporter).",
    )
    parser.add_argument("model_dir", type=Path, help="folder with config.json and the weights")
    parser.add_argument("target", type=Path, help="the .onnx file to write")
    parser.add_argument("--delta", type=Path, help="a fine-tuned model's low-rank delta (.npz)")
    args = parser.parse_args(argv)
    export_onnx(args.model_dir, args.target, args.delta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
