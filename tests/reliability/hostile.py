"""Shared helpers for the reliability suite: run the CLI, snapshot a project, make hostile files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest

from cli import main
from tests.store.test_malformed_coco import snapshot

__all__ = ["run_cli", "snapshot", "png_bomb", "jpeg_bytes", "assert_refused"]


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one in-process ``cocolens`` call."""
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], project: Path, fragments: list[str]
) -> str:
    """The contract for bad input: exit 2, one line on stderr holding every fragment, project unchanged."""
    before = snapshot(project)
    code, _, err = run_cli(capsys, argv)
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert snapshot(project) == before
    return err


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit greyscale PNG of side×side zeros: ~110 kB on disk, 900 MP (2.7 GB as RGB) decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def jpeg_bytes(width: int = 80, height: int = 60, seed: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
