"""Run an embedding backbone on the CPU through ONNX Runtime instead of PyTorch eager mode.

Why: on the 2-vCPU AMD EPYC (AVX2) workspace MobileNetV2 at 128 px ran 15–36 crops/s in PyTorch
(channels-last, TorchScript freezing and batch sizes 16–64 made no measurable difference), and
90–218 crops/s through ONNX Runtime in the same runs at load 8–11, ~8× less CPU (docs/BENCHMARKS.md). The features
agree with PyTorch's to ~1e-6 (float32 rounding of fused operators).

The model is exported once per backbone and weights (the file name carries a hash of the state
dict) next to the torch checkpoints, so later runs only load it (~50 ms). Anything that goes wrong
(onnxruntime or onnx not installed, an export failure) returns None and the caller keeps PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RUNTIME_ENV = "COCOLENS_EMBED_RUNTIME"  # "torch" forces PyTorch on the CPU, "onnx" (default) prefers ORT
OPSET = 17


def wanted() -> bool:
    """True unless ``COCOLENS_EMBED_RUNTIME=torch`` asks for PyTorch."""
    return os.environ.get(RUNTIME_ENV, "onnx").strip().lower() != "torch"


def _weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _export(model: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with torch.inference_mode():
        torch.onnx.export(
            model,
            torch.zeros(2, 3, 64, 64),
            str(tmp),
            input_names=["x"],
            output_names=["features"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "features": {0: "n"}},
            opset_version=OPSET,
            dynamo=False,
        )
    os.replace(tmp, path)


def onnx_runner(
    model: Any, backbone: str, threads: int, cache_dir: Path
) -> Callable[[np.ndarray], np.ndarray] | None:
    """``f(x: (N, 3, H, W) float32) -> (N, dim) float32`` running ``model`` in ONNX Runtime, or None.

    ``model`` is the headless torch backbone (eval mode, on the CPU); its export is cached in
    ``cache_dir`` under the backbone name and a hash of its weights.
    """
    log = logging.getLogger(__name__)
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    try:
        path = cache_dir / f"{backbone}-{_weights_digest(model)}-opset{OPSET}.onnx"
        if not path.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            _export(model, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: on a shared 2-core machine the spinning
        # burnt ~25% more CPU for the same forward passes (2.4 vs 1.8 CPU-s per 512 crops at load 9).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any failure keeps the PyTorch path
        log.warning(
            "ONNX Runtime unavailable for %s (%s: %s); using PyTorch", backbone, type(exc).__name__, exc
        )
        return None

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0].reshape(len(x), -1)

    return run
