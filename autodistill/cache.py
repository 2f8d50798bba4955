"""Disk caches that are written atomically: a half-written file is never read back."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the whole new one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    _atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: Path) -> Any | None:
    """The cached object, or None when there is none. Tensors and plain containers only (no pickle code)."""
    import torch

    if not path.is_file():
        return None
    return torch.load(path, weights_only=True)


def atomic_json_save(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True)))


def load_json(path: Path) -> Any | None:
    return json.loads(path.read_text()) if path.is_file() else None
