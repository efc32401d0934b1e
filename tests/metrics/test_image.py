"""Image metrics: one decode per image, orientation, odd formats, broken files, metric ordering."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from metrics import registry
from metrics.image import ImageContext, compute_image
from tests.conftest import shared

PIXEL_METRICS = [
    "brightness",
    "contrast",
    "sharpness",
    "colourfulness",
    "red_fraction",
    "green_fraction",
    "blue_fraction",
    "entropy",
    "dark_score",
    "light_score",
    "grayscale",
]
GEOMETRY_METRICS = ["width", "height", "area", "aspect_ratio", "file_size"]


def fruit_photo() -> np.ndarray:
    """A real 800×600 RGB photo (fruits_nuts/0.jpg)."""
    return np.asarray(Image.open(shared("fruits_nuts", "images", "0.jpg")).convert("RGB"))


def save(path: Path, pixels: np.ndarray | Image.Image, **kwargs) -> dict:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    image.save(path, **kwargs)
    return {"path": str(path), "width": image.width, "height": image.height}


def test_specs_declare_meaning_range_and_group() -> None:
    specs = {s.name: s for s in registry.all_specs(level="image", kind="pixel")}
    for name in PIXEL_METRICS + GEOMETRY_METRICS:
        spec = specs[name]
        assert len(spec.description) > 30, name
        assert spec.group in {"geometry", "exposure", "quality", "colour", "file"}, name
        assert spec.needs_pixels == (name in PIXEL_METRICS), name
    for name in PIXEL_METRICS:
        if name != "colourfulness":
            assert specs[name].high is not None, f"{name} is a score and must be bounded"
    assert specs["entropy"].unit == "bits" and specs["entropy"].high == 8


def test_sharpness_computes_the_mapping_its_description_states(tmp_path: Path) -> None:
    """The description's ``v / (v + K)`` is the K the code uses (not the description's own literal)."""
    import re

    spec = registry.get("sharpness")
    stated = re.search(r"v / \(v \+ ([0-9.]+)\)", spec.description)
    assert stated, spec.description
    pixels = np.random.default_rng(0).integers(0, 256, (96, 128), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(pixels, mode="L").save(path)
    v = float(cv2.Laplacian(pixels.astype(np.float32), cv2.CV_32F, ksize=1).var())
    value = spec.func(ImageContext({"path": str(path), "width": 128, "height": 96}))
    assert value == pytest.approx(v / (v + float(stated.group(1))), rel=1e-4)


def test_real_photo_values_and_hashes() -> None:
    path = shared("fruits_nuts", "images", "0.jpg")
    result = compute_image({"path": str(path), "width": 800, "height": 600})
    assert result["status"] == "ok" and result["error"] == ""
    assert (result["decoded_width"], result["decoded_height"]) == (800, 600)
    assert result["content_hash"] == hashlib.sha1(path.read_bytes()).hexdigest()
    assert result["file_size"] == path.stat().st_size
    assert len(result["pixel_hash"]) == 40 and isinstance(result["phash"], int)
    assert -(2**63) <= result["phash"] < 2**63
    m = result["metrics"]
    assert m["width"] == 800 and m["height"] == 600 and m["area"] == 480000
    assert m["aspect_ratio"] == pytest.approx(4 / 3)
    for name in PIXEL_METRICS:
        assert m[name] is not None, name
    # A well exposed colour photo: mid brightness, good contrast, sharp, colourful, not grey.
    assert 0.4 < m["brightness"] < 0.8
    assert m["contrast"] > 0.3
    assert m["sharpness"] > 0.6
    assert m["entropy"] > 6.5
    assert m["colourfulness"] > 15
    assert m["grayscale"] < 0.9
    assert m["red_fraction"] + m["green_fraction"] + m["blue_fraction"] == pytest.approx(1.0)


def test_blood_cell_images_are_pink_on_blue() -> None:
    folder = shared("blood_cells", "images")
    files = sorted(folder.glob("*.jpg"))[:6]
    for path in files:
        m = compute_image({"path": str(path), "width": 416, "height": 416})["metrics"]
        assert m["red_fraction"] > m["blue_fraction"] - 0.05  # stained cells: red/pink dominate
        assert m["grayscale"] < 0.5


def test_exposure_ordering(tmp_path: Path) -> None:
    photo = fruit_photo()
    dark = compute_image(save(tmp_path / "dark.png", (photo * 0.15).astype(np.uint8)))["metrics"]
    normal = compute_image(save(tmp_path / "normal.png", photo))["metrics"]
    light = compute_image(save(tmp_path / "light.png", (255 - (255 - photo) * 0.1).astype(np.uint8)))[
        "metrics"
    ]
    assert dark["brightness"] < normal["brightness"] < light["brightness"]
    assert dark["dark_score"] > 0.6 > normal["dark_score"]
    assert light["light_score"] > 0.85 > normal["light_score"]
    assert dark["contrast"] < normal["contrast"] and light["contrast"] < normal["contrast"]


def test_blur_lowers_sharpness_and_flat_image_has_no_information(tmp_path: Path) -> None:
    photo = fruit_photo()
    sharp = compute_image(save(tmp_path / "sharp.png", photo))["metrics"]
    blurred = compute_image(save(tmp_path / "blur.png", cv2.GaussianBlur(photo, (0, 0), 4)))["metrics"]
    flat = compute_image(save(tmp_path / "flat.png", np.full((300, 400, 3), 128, np.uint8)))["metrics"]
    assert blurred["sharpness"] < sharp["sharpness"] - 0.3
    assert flat["sharpness"] == 0.0
    assert flat["entropy"] == 0.0 and flat["contrast"] == 0.0
    assert flat["colourfulness"] == pytest.approx(0.0)


def test_grayscale_and_colour_fractions(tmp_path: Path) -> None:
    photo = fruit_photo()
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    as_rgb = compute_image(save(tmp_path / "grey_rgb.jpg", np.stack([grey] * 3, axis=2)))["metrics"]
    as_l = compute_image(save(tmp_path / "grey_l.png", grey))["metrics"]
    colour = compute_image(save(tmp_path / "colour.png", photo))["metrics"]
    assert as_rgb["grayscale"] > 0.99 and as_l["grayscale"] == 1.0
    assert colour["grayscale"] < 0.9
    assert as_l["colourfulness"] == pytest.approx(0.0) and colour["colourfulness"] > 15
    assert as_l["red_fraction"] == pytest.approx(1 / 3)
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200
    red_m = compute_image(save(tmp_path / "red.png", red))["metrics"]
    assert red_m["red_fraction"] == pytest.approx(1.0) and red_m["blue_fraction"] == 0.0


def _rotated_jpeg(tmp_path: Path, name: str) -> tuple[Path, np.ndarray]:
    """A JPEG stored landscape 640×480 with EXIF orientation 6 (shown portrait 480×640)."""
    stored = np.zeros((480, 640, 3), np.uint8)
    stored[:, :320] = 255  # left half white in the stored frame → top half white once rotated
    exif = Image.Exif()
    exif[274] = 6
    path = tmp_path / name
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    return path, stored


def test_exif_rotation_applied_when_annotations_use_the_rotated_frame(tmp_path: Path) -> None:
    path, _ = _rotated_jpeg(tmp_path, "rot.jpg")
    result = compute_image({"path": str(path), "width": 480, "height": 640})
    assert result["status"] == "ok"
    assert result["exif_orientation"] == 6 and result["orientation_applied"] is True
    assert (result["decoded_width"], result["decoded_height"]) == (480, 640)
    ctx = ImageContext({"path": str(path), "width": 480, "height": 640})
    assert ctx.rgb.shape[:2] == (640, 480)
    assert ctx.gray[:300].mean() > 200 and ctx.gray[340:].mean() < 50  # the white half is on top


def test_exif_rotation_not_applied_when_annotations_use_the_stored_frame(tmp_path: Path) -> None:
    path, _ = _rotated_jpeg(tmp_path, "rot.jpg")
    kept = compute_image({"path": str(path), "width": 640, "height": 480})
    assert kept["exif_orientation"] == 6 and kept["orientation_applied"] is False
    assert (kept["decoded_width"], kept["decoded_height"]) == (640, 480)
    # Neither size matches: shown as a browser would (rotated), and recorded.
    other = compute_image({"path": str(path), "width": 100, "height": 100})
    assert other["orientation_applied"] is True and other["decoded_width"] == 480
    applied = compute_image({"path": str(path), "width": 480, "height": 640})
    assert applied["pixel_hash"] != kept["pixel_hash"]  # different frames, different pixels


def test_pixel_hash_ignores_metadata_and_sees_pixels(tmp_path: Path) -> None:
    photo = fruit_photo()
    plain = save(tmp_path / "a.jpg", photo, quality=90)
    raw = Path(plain["path"]).read_bytes()
    # Same coded image, extra COM segment inserted after SOI: different file bytes, same pixels.
    comment = b"\xff\xfe" + (len(b"hello") + 2).to_bytes(2, "big") + b"hello"
    copy = tmp_path / "b.jpg"
    copy.write_bytes(raw[:2] + comment + raw[2:])
    changed = photo.copy()
    changed[10, 10] = 255 - changed[10, 10]
    other = save(tmp_path / "c.jpg", changed, quality=90)
    a = compute_image(plain)
    b = compute_image({**plain, "path": str(copy)})
    c = compute_image(other)
    assert a["content_hash"] != b["content_hash"]
    assert a["pixel_hash"] == b["pixel_hash"] != c["pixel_hash"]
    assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(Image.open(plain["path"])))
    png_a = compute_image(save(tmp_path / "a.png", photo))
    png_b = compute_image(save(tmp_path / "b.png", photo, compress_level=1))
    assert png_a["content_hash"] != png_b["content_hash"] and png_a["pixel_hash"] == png_b["pixel_hash"]


def test_large_jpeg_is_decoded_reduced_with_the_same_statistics(tmp_path: Path) -> None:
    photo = Image.fromarray(fruit_photo()).resize((3200, 2400), Image.Resampling.BICUBIC)
    record = save(tmp_path / "big.jpg", photo, quality=92)
    ctx = ImageContext(record)
    assert max(ctx.rgb.shape) == 800  # 1/4 scale: longest side ≥ 512
    big = compute_image(record)
    small = compute_image(save(tmp_path / "small.jpg", photo.resize((800, 600)), quality=92))
    assert (big["decoded_width"], big["decoded_height"]) == (3200, 2400)
    for name in ("brightness", "contrast", "red_fraction", "entropy", "grayscale"):
        assert big["metrics"][name] == pytest.approx(small["metrics"][name], abs=0.02), name


@pytest.mark.parametrize(
    "mode",
    ["CMYK", "I;16", "RGB16", "P+alpha", "RGBA", "LA", "1", "P"],
)
def test_unusual_modes_decode_to_sensible_rgb(tmp_path: Path, mode: str) -> None:
    photo = fruit_photo()[:240, :320]
    if mode == "CMYK":
        record = save(tmp_path / "cmyk.jpg", Image.fromarray(photo).convert("CMYK"))
    elif mode == "I;16":
        grey16 = (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257).astype(np.uint16)
        record = save(tmp_path / "g16.png", Image.fromarray(grey16))  # uint16 → 16-bit PNG
    elif mode == "RGB16":  # 48-bit PNG (written by OpenCV, BGR order)
        path = tmp_path / "rgb16.png"
        cv2.imwrite(str(path), photo[:, :, ::-1].astype(np.uint16) * 257)
        record = {"path": str(path), "width": 320, "height": 240}
    elif mode == "P+alpha":
        pal = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        pal.info["transparency"] = 0
        record = save(tmp_path / "pal.png", pal, transparency=0)
    elif mode == "RGBA":
        rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
        record = save(tmp_path / "rgba.png", rgba)
    elif mode == "LA":
        record = save(tmp_path / "la.png", Image.fromarray(photo).convert("LA"))
    elif mode == "1":
        record = save(tmp_path / "bw.png", Image.fromarray(photo).convert("1"))
    else:
        record = save(tmp_path / "pal.gif", Image.fromarray(photo).convert("P"))
    result = compute_image(record)
    assert result["status"] == "ok", result["error"]
    m = result["metrics"]
    assert all(m[name] is not None for name in PIXEL_METRICS)
    reference = compute_image(save(tmp_path / "ref.png", photo))["metrics"]
    if mode in ("CMYK", "RGBA", "P", "P+alpha"):
        assert m["brightness"] == pytest.approx(reference["brightness"], abs=0.08)
    if mode == "RGB16":
        assert m["brightness"] == pytest.approx(reference["brightness"], abs=0.01)
        assert m["red_fraction"] == pytest.approx(reference["red_fraction"], abs=0.01)
    if mode in ("I;16", "LA"):  # 16-bit scaled, not clipped to white
        assert m["brightness"] == pytest.approx(reference["brightness"], abs=0.03)
        assert m["grayscale"] == 1.0


@pytest.mark.parametrize("case", ["empty", "truncated", "not_an_image", "missing", "directory"])
def test_broken_files_never_raise(tmp_path: Path, case: str) -> None:
    path = tmp_path / "img.jpg"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        raw = (shared("fruits_nuts", "images", "0.jpg")).read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif case == "not_an_image":
        path.write_text("hello, not a JPEG")
    elif case == "directory":
        path.mkdir()
    result = compute_image({"path": str(path), "width": 800, "height": 600})
    expected = "missing" if case == "missing" else "unreadable"
    assert result["status"] == expected
    assert result["error"] and "\n" not in result["error"]
    if case == "empty":
        assert "0 bytes" in result["error"]
    if case == "truncated":
        assert "truncated" in result["error"]
    assert result["pixel_hash"] == "" and result["phash"] is None
    m = result["metrics"]
    assert m["width"] == 800 and m["area"] == 480000  # geometry needs no pixels
    assert all(m[name] is None for name in PIXEL_METRICS)
    if case == "missing":
        assert result["content_hash"] == "" and m["file_size"] is None
    elif case != "directory":
        assert result["content_hash"] == hashlib.sha1(path.read_bytes()).hexdigest()


def test_decompression_bomb_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = save(tmp_path / "big.png", np.zeros((200, 300, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    result = compute_image(record)
    assert result["status"] == "unreadable"
    assert "decompression bomb" in result["error"]


def test_custom_pixel_metric_is_picked_up_and_decode_happens_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        calls.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)

    @registry.image_metric(name="test_top_row_mean", low=0, high=255, description="Mean of the top row.")
    def top_row(ctx: ImageContext) -> float:
        return float(ctx.gray[0].mean())

    @registry.image_metric(name="test_broken_metric", description="Always raises.")
    def broken(ctx: ImageContext) -> float:
        raise RuntimeError("boom")

    try:
        pixels = np.zeros((100, 120, 3), np.uint8)
        pixels[0] = 200
        result = compute_image(save(tmp_path / "x.png", pixels))
        assert result["metrics"]["test_top_row_mean"] == pytest.approx(200, abs=1)
        assert result["metrics"]["test_broken_metric"] is None
        assert "test_broken_metric" in result["error"] and "boom" in result["error"]
        assert result["status"] == "ok"
        assert len(calls) == 1 and isinstance(calls[0], io.BytesIO)  # one decode, from the bytes read once
    finally:
        registry._REGISTRY.pop("test_top_row_mean", None)
        registry._REGISTRY.pop("test_broken_metric", None)


def test_perceived_brightness_is_bit_identical_to_per_channel_lookups_for_every_colour() -> None:
    """The one-lookup form keeps every float32 bit of the three-lookup formula, over all 2^24 colours."""
    from metrics.image import perceived_brightness

    squares = (np.arange(256, dtype=np.float32) / 255.0) ** 2
    for red_block in range(4):  # 64 reds at a time: 4M colours, ~100 MB of planes
        codes = np.arange(red_block << 22, (red_block + 1) << 22, dtype=np.uint32)
        rgb = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8)
        rgb = rgb.reshape(2048, 2048, 3)
        red, green, blue = cv2.split(rgb)
        per_channel = cv2.sqrt(
            cv2.LUT(red, squares * 0.241) + cv2.LUT(green, squares * 0.691) + cv2.LUT(blue, squares * 0.068)
        )
        assert np.array_equal(perceived_brightness(rgb), per_channel.ravel())
