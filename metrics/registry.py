"""Metric registry: every metric declares what it means before it computes anything.

A metric is a plain function registered with one of the decorators below. The spec it carries
(name, level, range, direction, description, version) is what the app shows next to every chart
and what the store keys results by (name + version, never description text).

Custom metrics plug in without editing cocolens: put decorated functions in any importable module
and name it with ``cocolens metrics --project DIR --add my.module`` (or a ``path/to/file.py``).

Three kinds of function, by what they need:

* ``@image_metric``  ``fn(ctx: ImageContext) -> float | None`` — one image at a time; ``ctx`` gives
  the record (annotated width/height, file size) and lazily decoded pixels. Metrics with
  ``needs_pixels=False`` are computed even when the image file is missing.
* ``@object_metric`` ``fn(objects: pd.DataFrame, images: pd.DataFrame) -> array-like`` — vectorised
  over one dataset's objects (one value per row of ``objects``, same order).
* ``@image_table_metric`` ``fn(objects, images) -> array-like`` — vectorised over images (one value
  per row of ``images``), for metrics derived from labels (object count, density).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Level = Literal["image", "object", "prediction"]
Direction = Literal["higher_better", "lower_better", "neutral"]
Kind = Literal["pixel", "table", "external"]  # external: values produced elsewhere (embeddings, matching)


@dataclass(frozen=True)
class MetricSpec:
    """What a metric means: shown in the app, stored with every value."""

    name: str
    level: Level
    description: str
    low: float | None = None  # lower bound of the range, None = unbounded
    high: float | None = None  # upper bound of the range, None = unbounded
    direction: Direction = "neutral"
    unit: str = ""
    version: int = 1
    kind: Kind = "table"
    needs_pixels: bool = False
    group: str = "general"
    func: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    @property
    def range_text(self) -> str:
        low = "−∞" if self.low is None else f"{self.low:g}"
        high = "+∞" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high}]"

    @property
    def direction_text(self) -> str:
        return {
            "higher_better": "higher is better",
            "lower_better": "lower is better",
            "neutral": "neither end is better: look at the outliers",
        }[self.direction]

    def help_text(self) -> str:
        """One paragraph for tooltips: meaning, range, direction."""
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.description} Range {self.range_text}{unit}; {self.direction_text}."


_REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add or replace a metric. Replacing with a new version is how a metric is changed."""
    if not spec.name.isidentifier():
        raise ValueError(f"metric name {spec.name!r} must be a Python identifier (it is a column name)")
    _REGISTRY[spec.name] = spec
    return spec


def _decorator(level: Level, kind: Kind, **spec_kwargs: Any) -> Callable[[Callable], Callable]:
    def wrap(func: Callable) -> Callable:
        name = spec_kwargs.pop("name", None) or func.__name__
        register(MetricSpec(name=name, level=level, kind=kind, func=func, **spec_kwargs))
        return func

    return wrap


def image_metric(**spec_kwargs: Any) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx: ImageContext) -> float | None`` as an image-level pixel metric."""
    spec_kwargs.setdefault("needs_pixels", True)
    return _decorator("image", "pixel", **spec_kwargs)


def object_metric(**spec_kwargs: Any) -> Callable[[Callable], Callable]:
    """Register ``fn(objects, images) -> array`` as an object-level metric (one value per object)."""
    return _decorator("object", "table", **spec_kwargs)


def image_table_metric(**spec_kwargs: Any) -> Callable[[Callable], Callable]:
    """Register ``fn(objects, images) -> array`` as an image-level metric derived from the tables."""
    return _decorator("image", "table", **spec_kwargs)


def describe_only(**spec_kwargs: Any) -> MetricSpec:
    """Register a spec whose values are produced elsewhere (e.g. embeddings, predictions)."""
    spec_kwargs["kind"] = "external"
    return register(MetricSpec(**spec_kwargs))


def describe_score(name: str, level: Level, group: str, direction: Direction, description: str) -> MetricSpec:
    """:func:`describe_only` for a score in [0, 1], what every embedding, label-error and matching value is."""
    return describe_only(
        name=name, level=level, low=0.0, high=1.0, direction=direction, group=group, description=description
    )


def get(name: str) -> MetricSpec:
    ensure_builtin_loaded()
    return _REGISTRY[name]


def all_specs(level: Level | None = None, kind: Kind | None = None) -> list[MetricSpec]:
    """Specs of computable metrics (external ones only when ``kind='external'`` is asked for)."""
    ensure_builtin_loaded(PIXEL_MODULES if level == "image" and kind == "pixel" else BUILTIN_MODULES)
    return [
        s
        for s in _REGISTRY.values()
        if (level is None or s.level == level)
        and (s.kind == kind if kind is not None else s.kind != "external")
    ]


def specs_by_name() -> dict[str, MetricSpec]:
    ensure_builtin_loaded()
    return dict(_REGISTRY)


def explain(names: Iterable[str]) -> dict[str, list[str]]:
    """``range``, ``direction`` and ``meaning`` columns for a column of metric names: what every metric
    table shows beside the values. A name without a spec (a custom metric not loaded) gets empty range
    and direction and the meaning "custom metric"."""
    specs = specs_by_name()
    found = [specs.get(name) for name in names]
    return {
        "range": [s.range_text if s else "" for s in found],
        "direction": [s.direction_text if s else "" for s in found],
        "meaning": [s.description if s else "custom metric" for s in found],
    }


BUILTIN_MODULES = ("metrics.image", "metrics.objects", "metrics.described")
# Every built-in pixel metric is in metrics.image: an image-pass worker imports just that (not pandas
# and pycocotools through metrics.objects, ~0.3 s of CPU per worker process).
PIXEL_MODULES = ("metrics.image",)
_loaded_modules: set[str] = set()


def ensure_builtin_loaded(modules: tuple[str, ...] = BUILTIN_MODULES) -> None:
    """Import the built-in metric modules once (they register on import); all of them by default."""
    for module in modules:
        if module in _loaded_modules:
            continue
        _loaded_modules.add(module)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a module not written yet must not break the rest
            if exc.name != module:
                raise


def load_plugin(target: str) -> list[str]:
    """Import a user's metric module by dotted path or by ``.py`` file path; return names it added.

    Only what the user names is loaded: cocolens never scans folders for code.
    """
    ensure_builtin_loaded()
    before = {name: spec.version for name, spec in _REGISTRY.items()}
    if target.endswith(".py"):
        path = Path(target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{target}: custom metric file not found")
        module_name = f"cocolens_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{target}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(target)
    return [n for n, s in _REGISTRY.items() if before.get(n) != s.version or n not in before]


def finite_or_none(value: Any) -> float | None:
    """Metric values are floats or None (cannot be computed); NaN/inf become None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
