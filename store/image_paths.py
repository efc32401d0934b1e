"""Where each COCO image record's file is, and the records the image pass computes from.

Kept free of pandas (and of the rest of the importer) so that ``cocolens import coco`` can build
the same records from the raw JSON before its heavy imports (store/early_image_pass.py).
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np


def resolve_image_path(images_root: Path, file_name: str) -> tuple[str, str]:
    """Absolute path for a record, or ('', reason) when it would leave the images folder."""
    try:
        candidate = (images_root / file_name).resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError on a symlink loop
        reason = "symlink loop" if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP else exc.strerror
        return "", f"{file_name!r} cannot be resolved: {reason}"
    if not candidate.exists():
        candidate = _other_normalisation(images_root, file_name, candidate)
    if not candidate.is_relative_to(images_root):
        return "", f"{file_name!r} resolves outside the images folder (symlink escape)"
    try:
        mode = candidate.stat().st_mode
    except OSError:
        mode = None  # missing or unreadable: the image pass says which
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        # A FIFO in the images folder hung the import forever (open() waits for a writer).
        return "", f"{file_name!r} is not a regular file (a FIFO, socket or device)"
    return str(candidate), ""


def resolve_image_paths(images_root: Path, file_names: list[str]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """:func:`resolve_image_path` for every record, and which of them are known missing.

    Each folder the names point into is resolved and listed once: a name absent from its folder's
    listing (in both Unicode normalisations) is missing without a syscall of its own, and gets the
    very path the per-file resolve gives (the folder's real path + the name). A per-file stat of
    20,000 missing files cost ~2 s, and sending them to worker processes ~14 s at load 4. Names in
    folders that cannot be listed (not a folder, no permission), or whose folder part changes under
    Unicode normalisation, go the per-file way, so every escape / FIFO / normalisation rule is applied exactly as before.
    """
    listings: dict[str, tuple[Path, frozenset[str]] | None] = {}
    out: list[tuple[str, str]] = []
    missing = np.zeros(len(file_names), dtype=bool)
    for i, name in enumerate(file_names):
        folder, _, leaf = name.rpartition("/")
        listing = listings.get(folder, False)
        if listing is False:
            listing = listings[folder] = _listing(images_root, folder)
        if listing is not None and leaf and leaf not in (".", ".."):
            real_folder, names = listing
            if not _any_form_in(leaf, names):
                candidate = real_folder / leaf
                if not candidate.is_relative_to(images_root):
                    out.append(("", f"{name!r} resolves outside the images folder (symlink escape)"))
                else:
                    out.append((str(candidate), ""))
                    missing[i] = True
                continue
        out.append(resolve_image_path(images_root, name))
    return out, missing


def _listing(images_root: Path, folder: str) -> tuple[Path, frozenset[str]] | None:
    """(real path, entry names) of a folder of the images root; None when the fast path does not apply."""
    if any(unicodedata.normalize(form, folder) != folder for form in ("NFC", "NFD")):
        return None
    try:
        real = (images_root / folder).resolve() if folder else images_root
    except (RuntimeError, OSError):
        return None
    try:
        return real, frozenset(os.listdir(real))
    except FileNotFoundError:  # no such folder: nothing in it exists (a file in its place is not this)
        return real, frozenset()
    except OSError:
        return None


def _any_form_in(leaf: str, names: frozenset[str]) -> bool:
    return leaf in names or any(unicodedata.normalize(form, leaf) in names for form in ("NFC", "NFD"))


def _other_normalisation(images_root: Path, file_name: str, candidate: Path) -> Path:
    """The file under the name's other Unicode form, if only that exists (NFD on disk from macOS, NFC in JSON)."""
    for form in ("NFC", "NFD"):
        other = unicodedata.normalize(form, file_name)
        if other != file_name:
            try:
                path = (images_root / other).resolve()
            except (RuntimeError, OSError):
                continue
            if path.exists():
                return path
    return candidate


def image_pass_records(
    resolved: list[tuple[str, str]], widths: list[Any], heights: list[Any], known_missing: list[bool]
) -> list[dict[str, Any]]:
    """One metrics.image.compute_image record per image: its file (or why not), annotated size."""
    return [
        {"path": path, "width": w, "height": h, "escape_error": err, "known_missing": bool(gone)}
        for (path, err), w, h, gone in zip(resolved, widths, heights, known_missing, strict=True)
    ]
