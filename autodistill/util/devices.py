"""Where models run: CUDA when present, the CPU otherwise."""

from __future__ import annotations


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
