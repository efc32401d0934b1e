"""What this machine offers a training: CPU cores, CUDA devices, and the one-line check of a device
asked for. Torch is imported only when an NVIDIA driver is present (the app stays quick without one).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from models.config import TrainConfig
from store.errors import InputError


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, as PyTorch's DataLoader checks it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _nvidia_present() -> bool:
    """An NVIDIA device node or driver entry exists (checked before paying for importing torch)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or any(Path("/dev").glob("nvidia[0-9]*"))


@functools.lru_cache(maxsize=1)
def available_devices() -> tuple[str, ...]:
    """The devices a training can use here: auto and cpu, and cuda (cuda:N each when several) only when
    torch sees a CUDA device. Without an NVIDIA driver, torch is not even imported (the app stays quick)."""
    devices = ["auto", "cpu"]
    if not _nvidia_present():
        return tuple(devices)
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        devices.append("cuda")
    if count > 1:
        devices += [f"cuda:{i}" for i in range(count)]
    return tuple(devices)


def fit_workers(config: TrainConfig) -> TrainConfig:
    """The config with at most one data-loader worker per available core (more only adds contention,
    and PyTorch warns about it); says so in the job log when it lowers the number."""
    cores = available_cores()
    if config.workers < 0:  # -1: one per available core
        return config.replace(workers=cores)
    if config.workers <= cores:
        return config
    logging.getLogger("cocolens.job").info(
        "data loader workers: %d asked for, %d cores available: using %d", config.workers, cores, cores
    )
    return config.replace(workers=cores)


def check_device(device: str, where: str = "config") -> None:
    """One line instead of a CUDA stack trace when CUDA is asked for on a machine without it.

    device: 'auto', 'cpu', 'cuda' or 'cuda:N'; where: the file or field named in the InputError.
    """
    if device == "cpu" or device == "auto":
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(
            where,
            f"device {device!r} asked for but CUDA is not available here; use 'auto' or 'cpu'",
            field="device",
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise InputError(
            where, f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)", field="device"
        )
