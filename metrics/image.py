"""Image-level metrics: every image file is read once and decoded once, at reduced size.

Why reduced: an 8 MP photo costs ~60 ms to decode fully and ~15 ms at 1/4 scale (JPEG DCT scaling),
and brightness, contrast, sharpness or colour statistics need no more than ~512 px on the longest
side. :class:`ImageContext` reads the bytes once (sha1 content hash and decode share them), decodes
once at the largest power-of-two reduction that keeps the longest side ≥ ``ANALYSIS_SIDE`` px,
applies the EXIF orientation when it is the frame the annotations refer to, and caches the arrays.

Every metric here is registered with :func:`metrics.registry.image_metric`; :func:`compute_image`
runs all registered image pixel metrics, so custom metrics registered later are picked up.
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import warnings
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from metrics.registry import all_specs, finite_or_none, image_metric

# Longest side (px) the reduced decode keeps at least; pixel metrics are measured on it.
ANALYSIS_SIDE = 512
# An image file larger than this is flagged unreadable without being read: files are read whole,
# and the largest real photos (108 MP, even as 16-bit TIFF) stay well below it.
MAX_IMAGE_FILE_BYTES = 2 * 1024**3
# JPEGs above Pillow's decompression-bomb limit (89 MP; a 108 MP phone photo is 12000×9000) are
# decoded at reduced scale by draft mode (1/8: 1.7 MP for 108 MP) when the file is as large as a
# real photo of that size; a header claiming far more pixels than the file could hold stays refused.
LARGE_JPEG_MAX_PIXELS = 16 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
LARGE_JPEG_MIN_BYTES_PER_PIXEL = 1 / 2000
# Sharpness = v / (v + SHARPNESS_K), v = variance of the Laplacian of the 0–255 grey image at
# ≤ 512 px longest side. K = 100 puts the classic "blurry below 100" rule of thumb at 0.5.
SHARPNESS_K = 100.0
# A pixel counts as grey when its channels differ by at most this much (0–255); tolerates JPEG chroma noise.
GREY_TOLERANCE = 8
# EXIF orientation (tag 274) → the transpose a browser applies to show the image upright.
EXIF_ORIENTATION_TAG = 274
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orient(img: Image.Image, orientation: int | None, applied: bool) -> Image.Image:
    """The picture in the frame the import chose (``orientation_applied``): one rule for every reader."""
    if applied and orientation in _TRANSPOSE:
        return img.transpose(_TRANSPOSE[orientation])
    return img


_REDUCED = "Measured on the image decoded at 1/1–1/8 scale (longest side ≥ 512 px; JPEG DCT scaling)."


class UnreadableImage(Exception):
    """The file exists but cannot be decoded; the message is the one-line reason stored with it."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _decide_orientation(orientation: int | None, raw_size: tuple[int, int], annotated: tuple | None) -> bool:
    """Apply EXIF orientation unless the annotations clearly refer to the stored (un-rotated) frame."""
    if orientation not in _TRANSPOSE:
        return False
    rotated = (raw_size[1], raw_size[0]) if orientation in (5, 6, 7, 8) else raw_size
    if annotated is None or rotated == annotated:
        return True
    if raw_size == annotated:
        return False
    return True  # matches neither: show it as a browser would


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode → uint8 RGB; 16/32-bit scaled (not clipped), alpha composited over white."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img)
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img).astype(np.float32)
        if mode == "F":
            arr = arr * 255.0 if arr.size and float(arr.max()) <= 1.0 else arr
        elif mode.startswith("I;16") or (arr.size and float(arr.max()) > 255):
            arr = arr / 257.0
        grey = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        return (rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.asarray(img.convert("RGB"))


def _jpeg_coded_parts(data: bytes) -> list[memoryview]:
    """The bytes that determine a JPEG's pixels: every segment but APPn/COM metadata, then the scans."""
    raw = memoryview(data)
    parts = [raw[:2]]
    pos = 2
    while pos + 4 <= len(raw):
        if raw[pos] != 0xFF:
            break
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is coded data
            parts.append(raw[pos:])
            return parts
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        segment = raw[pos : pos + 2 + length]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            parts.append(segment)
        pos += 2 + length
    parts.append(raw[pos:])
    return parts


# pHash bit layout: the 64 low-frequency DCT coefficients grouped by (row parity, column parity)
# into four 16-bit lanes EE|EO|OE|OO (most significant first). A left-right flip negates the
# coefficients with an odd column, an up-down flip those with an odd row, so a flipped image's hash
# is the original XOR a lane mask: metrics.duplicates uses that to find mirrored copies.
_LANE_ORDER = np.array(
    [
        u * 8 + v
        for pu, pv in ((0, 0), (0, 1), (1, 0), (1, 1))
        for u in range(pu, 8, 2)
        for v in range(pv, 8, 2)
    ]
)


def _phash(gray: np.ndarray) -> int:
    """64-bit DCT sign hash: grey at 32×32, 8×8 lowest DCT coefficients, bit = coefficient > 0.

    Like imagehash's pHash but thresholded at 0 instead of the median, so flips map to bit masks.
    Coefficients below 1e-3 of the mean level count as 0, so flat images hash alike.
    """
    import cv2

    small = cv2.resize(gray.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > 1e-3 * (abs(float(low[0])) + 1.0)
    value = int(np.packbits(bits[_LANE_ORDER]).view(">u8")[0])
    return value - (1 << 64) if value >= (1 << 63) else value  # signed int64 for Parquet


class ImageContext:
    """One image record, its file read once and decoded once (lazily), with cached arrays.

    Metrics receive this object. Attributes without a file: ``record``, ``path``, ``width``,
    ``height`` (annotated). With a file: ``raw_bytes``, ``file_size``, ``content_hash``; after
    decoding: ``decoded_width/height`` (of the frame used), ``exif_orientation``,
    ``orientation_applied``, ``rgb`` (uint8 H×W×3, reduced), ``channels`` (its R, G, B planes),
    ``gray`` (uint8, reduced), ``gray_analysis`` (grey at ≤ 512 px longest side, for
    scale-dependent measures).
    """

    def __init__(self, record: dict[str, Any]):
        self.record = record
        self.path = str(record.get("path") or "")
        self.width = _int_or_none(record.get("width"))
        self.height = _int_or_none(record.get("height"))
        self.exif_orientation: int | None = None
        self.orientation_applied = False
        self.decoded_width: int | None = None
        self.decoded_height: int | None = None
        self.pixel_hash = ""
        self._rgb: np.ndarray | None = None
        self._decode_error: str | None = None

    @cached_property
    def raw_bytes(self) -> bytes | None:
        """File bytes, or None when there is no file at ``path``. Read errors propagate as OSError.

        A record marked ``known_missing`` (absent from its folder's listing) is not opened again.
        """
        if not self.path or self.record.get("known_missing"):
            return None
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > MAX_IMAGE_FILE_BYTES:  # a 100 GB sparse file: MemoryError reading it whole
                    raise OSError(
                        errno.EFBIG,
                        f"file is {size / 1e9:.1f} GB, above the {MAX_IMAGE_FILE_BYTES / 1e9:.1f} GB limit "
                        "for one image; not read",
                    )
                return handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    @property
    def file_size(self) -> int | None:
        raw = self.raw_bytes
        return len(raw) if raw is not None else None

    @cached_property
    def content_hash(self) -> str:
        raw = self.raw_bytes
        return hashlib.sha1(raw).hexdigest() if raw is not None else ""

    @property
    def rgb(self) -> np.ndarray:
        """Reduced oriented RGB (uint8); raises :class:`UnreadableImage` when the file cannot be decoded."""
        if self._rgb is None:
            self._decode()
        assert self._rgb is not None
        return self._rgb

    @cached_property
    def channels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The R, G and B planes of :attr:`rgb`, split once for the colour metrics that read them."""
        import cv2

        red, green, blue = cv2.split(self.rgb)
        return red, green, blue

    @cached_property
    def gray(self) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)  # Rec.601 luma

    def cached(self, key: str, factory: Callable[[], Any]) -> Any:
        """Share an intermediate result between metrics of this image (computed on first use)."""
        store = self.__dict__.setdefault("_shared", {})
        if key not in store:
            store[key] = factory()
        return store[key]

    @cached_property
    def gray_analysis(self) -> np.ndarray:
        import cv2

        gray = self.gray
        longest = max(gray.shape)
        if longest <= ANALYSIS_SIDE:
            return gray
        scale = ANALYSIS_SIDE / longest
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)

    def _decode(self) -> None:
        if self._decode_error is not None:
            raise UnreadableImage(self._decode_error)
        try:
            self._decode_once()
        except UnreadableImage as exc:
            self._decode_error = str(exc)
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            self._decode_error = f"decompression bomb guard: {_one_line(exc)}"
            raise UnreadableImage(self._decode_error) from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, KeyError) as exc:
            self._decode_error = _one_line(exc)
            raise UnreadableImage(self._decode_error) from exc

    def _decode_once(self) -> None:
        raw = self.raw_bytes
        if raw is None:
            raise UnreadableImage(f"file not found: {self.path}")
        if not raw:
            raise UnreadableImage("empty file (0 bytes)")
        img = _open_guarded(raw)
        raw_size = img.size
        orientation = _exif_orientation(img)
        annotated = (self.width, self.height) if self.width and self.height else None
        apply = _decide_orientation(orientation, raw_size, annotated)
        transpose = _TRANSPOSE[orientation] if apply and orientation is not None else None
        is_jpeg = img.format == "JPEG"
        longest = max(raw_size)
        if is_jpeg and longest >= 2 * ANALYSIS_SIDE:
            target = (
                max(1, math.ceil(raw_size[0] * ANALYSIS_SIDE / longest)),
                max(1, math.ceil(raw_size[1] * ANALYSIS_SIDE / longest)),
            )
            img.draft("RGB" if img.mode == "RGB" else None, target)
        img.load()
        if transpose is not None:
            img = img.transpose(transpose)
        if is_jpeg:
            # The coded data determines the decoded pixels, so equal hashes mean equal pixels
            # without paying for a full-size decode; the applied orientation is part of the frame.
            digest = hashlib.sha1()
            for part in _jpeg_coded_parts(raw):
                digest.update(part)
            digest.update(f"|orient={orientation if apply else 1}".encode())
            self.pixel_hash = digest.hexdigest()
        else:
            full = np.ascontiguousarray(np.asarray(img))
            header = f"{img.mode}|{full.shape}|{full.dtype}|".encode()
            self.pixel_hash = hashlib.sha1(header + full.tobytes()).hexdigest()
        rgb = _to_rgb(img)
        factor = max(1, max(img.size) // ANALYSIS_SIDE)
        if factor > 1:  # formats without DCT scaling: area-reduce after the (necessary) full decode
            import cv2

            size = (max(1, rgb.shape[1] // factor), max(1, rgb.shape[0] // factor))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        self.exif_orientation = orientation
        self.orientation_applied = bool(apply)
        rotated = apply and orientation in (5, 6, 7, 8)
        self.decoded_width, self.decoded_height = (raw_size[1], raw_size[0]) if rotated else raw_size
        self._rgb = np.ascontiguousarray(rgb)


def _open_guarded(raw: bytes) -> Image.Image:
    """Image.open with the decompression-bomb guard, except for large real JPEGs (draft-decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(raw))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as guard:
        limit = Image.MAX_IMAGE_PIXELS
        if not limit:
            raise
        Image.MAX_IMAGE_PIXELS = None  # read the header only, to see what the file claims
        try:
            img = Image.open(io.BytesIO(raw))
        except Exception:
            raise guard from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        pixels = img.size[0] * img.size[1]
        real_photo = len(raw) >= pixels * LARGE_JPEG_MIN_BYTES_PER_PIXEL
        if img.format == "JPEG" and pixels <= max(LARGE_JPEG_MAX_PIXELS, 2 * limit) and real_photo:
            return img
        raise guard from None


def missing_file_error(path: str) -> str:
    """The one-line error of an image whose file is absent."""
    return f"file not found: {_printable(path)}" if path else "no path"


def _printable(text: str) -> str:
    """Control characters (a newline in a file name) escaped, so a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _exif_orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(EXIF_ORIENTATION_TAG)
    except Exception:  # broken EXIF must not make the pixels unreadable
        return None
    return int(value) if isinstance(value, int) else None


def compute_image(record: dict[str, Any]) -> dict[str, Any]:
    """Decode one image record once and compute every registered image pixel metric; never raises.

    ``status`` is 'ok', 'missing' (no file: geometry metrics only) or 'unreadable' (one-line ``error``).
    """
    ctx = ImageContext(record)
    result: dict[str, Any] = {
        "status": "ok",
        "error": "",
        "decoded_width": None,
        "decoded_height": None,
        "exif_orientation": None,
        "orientation_applied": False,
        "file_size": None,
        "content_hash": "",
        "pixel_hash": "",
        "phash": None,
        "metrics": {},
    }
    try:
        raw = ctx.raw_bytes
    except OSError as exc:
        raw = None
        result.update(status="unreadable", error=_one_line(exc))
        ctx.__dict__["raw_bytes"] = None
    if raw is None and result["status"] == "ok":
        result.update(status="missing", error=missing_file_error(ctx.path))
    if raw is not None:
        result["file_size"] = len(raw)
        result["content_hash"] = ctx.content_hash
        try:
            ctx.rgb  # noqa: B018 - decode now so the status is known before the metrics run
            result.update(
                decoded_width=ctx.decoded_width,
                decoded_height=ctx.decoded_height,
                exif_orientation=ctx.exif_orientation,
                orientation_applied=ctx.orientation_applied,
                pixel_hash=ctx.pixel_hash,
                phash=_phash(ctx.gray_analysis),
            )
        except UnreadableImage as exc:
            result.update(status="unreadable", error=str(exc))
    mismatch = _size_mismatch(ctx) if result["status"] == "ok" else ""
    failures = []
    for spec in all_specs(level="image", kind="pixel"):
        value = None
        if spec.func is not None and (result["status"] == "ok" or not spec.needs_pixels):
            try:
                value = finite_or_none(spec.func(ctx))
            except Exception as exc:  # one broken (custom) metric must not lose the image
                failures.append(f"metric {spec.name}: {_one_line(exc)}")
        result["metrics"][spec.name] = value
    if failures and not result["error"]:
        result["error"] = "; ".join(failures)[:500]
    if mismatch:
        result["error"] = "; ".join(p for p in (mismatch, result["error"]) if p)[:500]
    return result


SIZE_MISMATCH = "decoded size differs from the record"


def _size_mismatch(ctx: ImageContext) -> str:
    """A note when the file's pixels are not the record's width×height (boxes will not line up)."""
    if not (ctx.width and ctx.height and ctx.decoded_width and ctx.decoded_height):
        return ""
    if (ctx.decoded_width, ctx.decoded_height) == (ctx.width, ctx.height):
        return ""
    return (
        f"{SIZE_MISMATCH}: file {ctx.decoded_width}×{ctx.decoded_height}, record {ctx.width}×{ctx.height}; "
        "boxes in the record's frame will not line up"
    )


# --- geometry (annotated size; no pixels needed) ------------------------------------------------


@image_metric(
    needs_pixels=False,
    group="geometry",
    unit="px",
    low=0,
    description="Image width as annotated in the COCO record.",
)
def width(ctx: ImageContext) -> float | None:
    return ctx.width


@image_metric(
    needs_pixels=False,
    group="geometry",
    unit="px",
    low=0,
    description="Image height as annotated in the COCO record.",
)
def height(ctx: ImageContext) -> float | None:
    return ctx.height


@image_metric(
    needs_pixels=False,
    group="geometry",
    unit="px²",
    low=0,
    description="Image area, width × height as annotated.",
)
def area(ctx: ImageContext) -> float | None:
    return ctx.width * ctx.height if ctx.width is not None and ctx.height is not None else None


@image_metric(
    needs_pixels=False,
    group="geometry",
    unit="w/h",
    low=0,
    description="Aspect ratio width / height as annotated (1 = square, > 1 landscape, < 1 portrait).",
)
def aspect_ratio(ctx: ImageContext) -> float | None:
    return ctx.width / ctx.height if ctx.width and ctx.height else None


@image_metric(
    needs_pixels=False,
    group="file",
    unit="bytes",
    low=0,
    description="Size of the image file on disk (no decode needed; null when the file is missing).",
)
def file_size(ctx: ImageContext) -> float | None:
    return ctx.file_size


# --- exposure ------------------------------------------------------------------------------------


@image_metric(
    group="exposure",
    low=0,
    high=1,
    description=f"Mean Rec.601 luminance (0 = black, 1 = white). {_REDUCED}",
)
def brightness(ctx: ImageContext) -> float:
    return _luma_mean_std(ctx)[0]


@image_metric(
    group="exposure",
    low=0,
    high=1,
    direction="higher_better",
    description=(
        "RMS contrast: standard deviation of luminance divided by 0.5, its largest possible value "
        f"(0 = flat, 1 = half black, half white). {_REDUCED}"
    ),
)
def contrast(ctx: ImageContext) -> float:
    return min(1.0, _luma_mean_std(ctx)[1] / 0.5)


def _luma_mean_std(ctx: ImageContext) -> tuple[float, float]:
    """Mean and std of Rec.601 luma in [0, 1] (cv2 grey, rounded to 1/255: negligible here)."""

    def compute() -> tuple[float, float]:
        import cv2

        mean, std = cv2.meanStdDev(ctx.gray)
        return float(mean[0, 0]) / 255.0, float(std[0, 0]) / 255.0

    return ctx.cached("luma_mean_std", compute)


_SQUARES = (np.arange(256, dtype=np.float32) / 255.0) ** 2
# Per-channel weights of perceived brightness applied to (c / 255)², as one 256-entry RGB table.
_PERCEIVED_SQUARES = np.stack([_SQUARES * 0.241, _SQUARES * 0.691, _SQUARES * 0.068], axis=-1).reshape(
    1, 256, 3
)


def perceived_brightness(rgb: np.ndarray) -> np.ndarray:
    """sqrt(.241R² + .691G² + .068B²) of uint8 H×W×3 RGB in [0, 1], float32, one value per pixel (flat).

    One 3-channel table lookup, then (R + G) + B in float32: the same bits as three per-channel
    lookups (tests/metrics/test_image.py checks all 2^24 colours) at half the passes over the image.
    """
    import cv2

    weighted = cv2.LUT(rgb, _PERCEIVED_SQUARES).reshape(-1, 3)
    total = weighted[:, 0] + weighted[:, 1]
    total += weighted[:, 2]
    return np.sqrt(total)


def _brightness_percentiles(ctx: ImageContext) -> tuple[float, float]:
    """5th and 99th percentile of perceived brightness sqrt(.241R²+.691G²+.068B²) in [0, 1]."""

    def compute() -> tuple[float, float]:
        import cv2

        perceived = perceived_brightness(ctx.rgb)
        # Percentiles from a 1,000-bin histogram (0.001 resolution): a sort of every pixel is slower.
        bins = 1000
        hist = cv2.calcHist([perceived], [0], None, [bins], [0.0, 1.0 + 1e-6]).ravel()
        cumulative = np.cumsum(hist) / max(float(hist.sum()), 1.0)
        p5, p99 = (np.searchsorted(cumulative, q) / bins for q in (0.05, 0.99))
        return float(p5), float(p99)

    return ctx.cached("brightness_percentiles", compute)


@image_metric(
    group="exposure",
    low=0,
    high=1,
    direction="lower_better",
    description=(
        "Darkness, cleanvision-style: 1 − the 99th percentile of perceived brightness "
        f"sqrt(.241R²+.691G²+.068B²); high = even the brightest pixels are dark. {_REDUCED}"
    ),
)
def dark_score(ctx: ImageContext) -> float:
    return 1.0 - _brightness_percentiles(ctx)[1]


@image_metric(
    group="exposure",
    low=0,
    high=1,
    direction="lower_better",
    description=(
        "Over-exposure, cleanvision-style: the 5th percentile of perceived brightness "
        f"sqrt(.241R²+.691G²+.068B²); high = even the darkest pixels are bright. {_REDUCED}"
    ),
)
def light_score(ctx: ImageContext) -> float:
    return _brightness_percentiles(ctx)[0]


# --- quality ------------------------------------------------------------------------------------


@image_metric(
    group="quality",
    low=0,
    high=1,
    direction="higher_better",
    description=(
        f"Sharpness v / (v + {SHARPNESS_K:g}), v = variance of the Laplacian of the 0–255 grey image scaled to "
        f"≤ {ANALYSIS_SIDE} px longest side (0.5 at v = {SHARPNESS_K:g}). Decoded at reduced scale."
    ),
)
def sharpness(ctx: ImageContext) -> float:
    import cv2

    v = float(cv2.Laplacian(ctx.gray_analysis.astype(np.float32), cv2.CV_32F, ksize=1).var())
    return v / (v + SHARPNESS_K)


@image_metric(
    group="quality",
    low=0,
    high=8,
    direction="higher_better",
    unit="bits",
    description=(
        "Shannon entropy of the 256-level grey histogram (0 = one flat colour, 8 = all levels equally "
        f"used); low values flag low-information images. {_REDUCED}"
    ),
)
def entropy(ctx: ImageContext) -> float:
    import cv2

    counts = cv2.calcHist([ctx.gray], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


# --- colour ---------------------------------------------------------------------------------------


@image_metric(
    group="colour",
    low=0,
    unit="Hasler–Süsstrunk M",
    description=(
        "Colourfulness M of Hasler & Süsstrunk (2003) on 0–255 RGB: std and mean of the rg and yb "
        "opponent channels. Their scale: 0 grey, 15 slightly, 33 moderately, 45 averagely, 59 quite, "
        f"82 highly, ≥ 109 extremely colourful. {_REDUCED}"
    ),
)
def colourfulness(ctx: ImageContext) -> float:
    import cv2

    red, green, blue = ctx.channels
    rg_mean, rg_std = cv2.meanStdDev(cv2.subtract(red, green, dtype=cv2.CV_16S))
    # yb = (R + G) / 2 − B, kept in integers as 2·yb and halved after the statistics.
    yb2 = cv2.subtract(cv2.add(red, green, dtype=cv2.CV_16S), cv2.add(blue, blue, dtype=cv2.CV_16S))
    yb_mean, yb_std = cv2.meanStdDev(yb2)
    spread = math.hypot(float(rg_std[0, 0]), float(yb_std[0, 0]) / 2)
    mean = math.hypot(float(rg_mean[0, 0]), float(yb_mean[0, 0]) / 2)
    return spread + 0.3 * mean


def _channel_fraction(ctx: ImageContext, channel: int) -> float:
    import cv2

    means = ctx.cached("channel_means", lambda: cv2.mean(ctx.rgb)[:3])  # one pass for the three
    total = float(sum(means))
    return float(means[channel] / total) if total > 0 else 1.0 / 3.0


def _declare_channel_fraction(channel: int, colour: str) -> None:
    """Register ``<colour>_fraction``: the share of one channel in the mean colour."""
    letter = colour[0].upper()

    def fraction(ctx: ImageContext) -> float:
        return _channel_fraction(ctx, channel)

    image_metric(
        name=f"{colour}_fraction",
        group="colour",
        low=0,
        high=1,
        description=(
            f"Share of {colour} in the mean colour: mean {letter} / (mean R + G + B); 1/3 for grey. {_REDUCED}"
        ),
    )(fraction)


for _channel, _colour in enumerate(("red", "green", "blue")):
    _declare_channel_fraction(_channel, _colour)


@image_metric(
    group="colour",
    low=0,
    high=1,
    description=(
        f"Fraction of pixels that are grey (R, G, B within {GREY_TOLERANCE} of 255 of each other): 1 = a grayscale "
        f"image, near 0 = a colour photo. {_REDUCED}"
    ),
)
def grayscale(ctx: ImageContext) -> float:
    import cv2

    red, green, blue = ctx.channels
    spread = cv2.subtract(cv2.max(cv2.max(red, green), blue), cv2.min(cv2.min(red, green), blue))
    return float(np.count_nonzero(spread <= GREY_TOLERANCE)) / spread.size
