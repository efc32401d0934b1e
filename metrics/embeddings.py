"""Image and object-crop embeddings from a pretrained ImageNet backbone.

Embeddings feed label-quality scores (neighbours of a crop should share its class), near-duplicate
search and the 2D map. Features are the backbone's global-average-pooled activations (1280-d for
MobileNetV2), L2-normalised float32, so a dot product is a cosine similarity.

Why crops default to 128 px, not 224: most objects are far smaller than 224 px (blood cells ~80 px),
so upscaling adds no information, while MobileNetV2 costs ~3× more at 224 px; on 2 CPU cores that is
the difference between ~40 and ~15 crops/s (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

import metrics.passive_openmp  # noqa: F401  (before torch loads its OpenMP runtime)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SIZE = 224  # whole images: the size the backbone was trained at
CROP_SIZE = 128  # object crops: see module docstring
CONTEXT_PAD = 0.1  # fraction of the box size added on each side: a little context helps classify
MIN_PAD_PX = 2.0
DEFAULT_BATCH = 32  # fits CPU caches well; larger batches were slower on 2 cores

Progress = Callable[[int, int], None]  # (done, total)
ImageInput = str | Path | np.ndarray


def cpu_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(count: int | None = None) -> Iterator[None]:
    """Run torch on all available cores (or ``count``), restoring the previous setting afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count or cpu_cores())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Embedder:
    """A backbone without its classification head; turns uint8 RGB batches into unit vectors."""

    model: Any
    device: str
    dim: int
    runner: Callable[[np.ndarray], np.ndarray] | None = (
        None  # ONNX Runtime on the CPU (metrics.onnx_backbone)
    )
    threads: int | None = None  # CPU threads it runs on; None = every core this process may use

    def __call__(self, batch_hwc: np.ndarray) -> np.ndarray:
        """``batch_hwc``: (N, H, W, 3) uint8 RGB, all the same size → (N, dim) float32, L2-normalised."""
        if self.runner is not None:
            return self._call_runner(batch_hwc)
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch_hwc)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        with torch.inference_mode():
            features = self.model(x).flatten(1)
            features = torch.nn.functional.normalize(features.float(), dim=1)
        return features.cpu().numpy().astype(np.float32, copy=False)

    def _call_runner(self, batch_hwc: np.ndarray) -> np.ndarray:
        """The same normalisation as the PyTorch path, in float32 numpy, then the ONNX model."""
        assert self.runner is not None
        x = np.ascontiguousarray(batch_hwc).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        x = (x - _MEAN) / _STD
        features = self.runner(x).astype(np.float32, copy=False)
        norms = np.sqrt(np.einsum("ij,ij->i", features, features, dtype=np.float32))[:, None]
        return features / np.maximum(norms, np.float32(1e-12))


_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(1, 3, 1, 1)


def _strip_head(model: Any) -> Any:
    """Replace the classifier with identity so forward() returns pooled features."""
    import torch

    if hasattr(model, "fc"):  # ResNet family
        model.fc = torch.nn.Identity()
    elif type(model).__name__ == "ConvNeXt":  # classifier = LayerNorm2d, Flatten, Linear
        model.classifier[-1] = torch.nn.Identity()
    elif type(model).__name__ == "MobileNetV3":  # keep the pooled conv features, not the MLP
        model.classifier = torch.nn.Identity()
    elif hasattr(model, "classifier"):  # MobileNetV2, EfficientNet
        model.classifier = torch.nn.Identity()
    else:
        raise ValueError(f"do not know how to take the head off {type(model).__name__}")
    return model


@lru_cache(maxsize=4)
def get_embedder(
    backbone: str = "mobilenet_v2", device: str | None = None, threads: int | None = None
) -> Embedder:
    """Pretrained feature extractor, loaded once per (backbone, device, threads).

    ``threads`` caps the CPU threads (a Ray actor given one CPU of a shared node); None = all cores.

    On the CPU the backbone runs in ONNX Runtime when it is installed (~8× less CPU than PyTorch on an
    AVX2 2-vCPU machine, see metrics/onnx_backbone.py); ``COCOLENS_EMBED_RUNTIME=torch`` keeps
    PyTorch.
    """
    import torch

    from metrics import onnx_backbone
    from metrics.weights import checkpoints_dir, load_backbone

    device = device or default_device()
    model = _strip_head(load_backbone(backbone, weights="DEFAULT", device=device))
    with torch.inference_mode():
        dim = int(model(torch.zeros(1, 3, 64, 64, device=device)).flatten(1).shape[1])
    runner = None
    if str(device) == "cpu" and onnx_backbone.wanted():
        cores = threads or cpu_cores()
        runner = onnx_backbone.onnx_runner(model, backbone, cores, Path(checkpoints_dir()) / "onnx")
    return Embedder(model=model, device=device, dim=dim, runner=runner, threads=threads)


def read_rgb(path: str | Path, apply_exif: bool = True) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB; EXIF orientation applied unless told not to.

    Annotations refer to the EXIF-rotated frame when the store says ``orientation_applied``.
    """
    import cv2

    flags = cv2.IMREAD_COLOR if apply_exif else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    data = np.fromfile(str(path), dtype=np.uint8)  # fromfile+imdecode handles non-ASCII paths
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ValueError(f"{path}: cannot be decoded as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    return image


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def crop_with_context(image: np.ndarray, box_xywh: Sequence[float], pad: float = CONTEXT_PAD) -> np.ndarray:
    """The box plus ``pad`` × its size on each side, clipped to the image; never empty."""
    height, width = image.shape[:2]
    x, y, w, h = (float(v) for v in box_xywh)
    pad_x, pad_y = max(MIN_PAD_PX, pad * w), max(MIN_PAD_PX, pad * h)
    x0 = int(np.clip(np.floor(x - pad_x), 0, width - 1))
    y0 = int(np.clip(np.floor(y - pad_y), 0, height - 1))
    x1 = int(np.clip(np.ceil(x + w + pad_x), x0 + 1, width))
    y1 = int(np.clip(np.ceil(y + h + pad_y), y0 + 1, height))
    return image[y0:y1, x0:x1]


def _run_batches(
    embedder: Embedder, tiles: Iterator[np.ndarray], total: int, batch_size: int, progress: Progress | None
) -> np.ndarray:
    out = np.empty((total, embedder.dim), dtype=np.float32)
    done = 0
    batch: list[np.ndarray] = []
    with torch_threads(embedder.threads):
        for tile in tiles:
            batch.append(tile)
            if len(batch) == batch_size:
                out[done : done + len(batch)] = embedder(np.stack(batch))
                done += len(batch)
                batch.clear()
                if progress:
                    progress(done, total)
        if batch:
            out[done : done + len(batch)] = embedder(np.stack(batch))
            done += len(batch)
            if progress:
                progress(done, total)
    return out


def embed_images(
    paths_or_arrays: Sequence[ImageInput],
    backbone: str = "mobilenet_v2",
    batch_size: int = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
    size: int = IMAGE_SIZE,
    embedder: Embedder | None = None,
) -> np.ndarray:
    """One embedding per whole image (squashed to ``size``²), shape (N, dim) float32.

    Files that cannot be decoded raise ValueError naming the file; callers skip missing images first.
    ``embedder`` (already loaded, e.g. by a Ray actor) replaces ``backbone`` / ``device``.
    """
    embedder = embedder or get_embedder(backbone, device)

    def tiles() -> Iterator[np.ndarray]:
        for item in paths_or_arrays:
            image = read_rgb(item) if isinstance(item, str | Path) else _as_rgb(item)
            yield _resize(image, size)

    return _run_batches(embedder, tiles(), len(paths_or_arrays), batch_size, progress)


def embed_objects(
    image_paths: Sequence[ImageInput],
    boxes_xywh: np.ndarray,
    backbone: str = "mobilenet_v2",
    batch_size: int = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
    size: int = CROP_SIZE,
    pad: float = CONTEXT_PAD,
    apply_exif: bool = True,
    embedder: Embedder | None = None,
) -> np.ndarray:
    """Embeddings of many object crops, shape (N, dim), rows in input order.

    ``image_paths[i]`` is the image of object ``i`` (repeat the path for each object of an image) and
    ``boxes_xywh[i]`` its COCO box. Each image is decoded once: objects are grouped by image.
    ``embedder`` (already loaded, e.g. by a Ray actor) replaces ``backbone`` / ``device``.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    if len(image_paths) != len(boxes):
        raise ValueError(f"{len(image_paths)} image paths for {len(boxes)} boxes")
    keys = [str(p) if isinstance(p, str | Path) else id(p) for p in image_paths]
    first_of: dict[Any, int] = {}
    groups: dict[Any, list[int]] = {}
    for index, key in enumerate(keys):
        first_of.setdefault(key, index)
        groups.setdefault(key, []).append(index)
    order = [i for key in groups for i in groups[key]]  # objects of one image together
    embedder = embedder or get_embedder(backbone, device)

    def tiles() -> Iterator[np.ndarray]:
        for key, members in groups.items():
            source = image_paths[first_of[key]]
            if isinstance(source, str | Path):
                image = read_rgb(source, apply_exif=apply_exif)
            else:
                image = _as_rgb(source)
            for i in members:
                yield _resize(crop_with_context(image, boxes[i], pad), size)

    grouped = _run_batches(embedder, tiles(), len(boxes), batch_size, progress)
    out = np.empty_like(grouped)
    out[np.asarray(order, dtype=np.int64)] = grouped
    return out


def embed_crops(
    image_path: ImageInput, boxes_xywh: np.ndarray, backbone: str = "mobilenet_v2", **kwargs: Any
) -> np.ndarray:
    """Embeddings of the boxes of one image, shape (len(boxes), dim)."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    return embed_objects([image_path] * len(boxes), boxes, backbone=backbone, **kwargs)
