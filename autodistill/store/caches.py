"""The study's caches on disk: the teacher's outputs and reference metrics, computed once and reused by
every trial and on resume. Each is keyed by what shapes it and written atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill.util.files import atomic_json_save, atomic_torch_save, load_json, load_torch
from autodistill.util.hashing import short_hash


def teacher_fingerprint(ref: str) -> str:
    """Identifies the teacher's weights: config and weight files' sizes and times, or the hub id."""
    files = []
    path = Path(ref)
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.suffix in {".json", ".safetensors", ".bin"}:
                stat = f.stat()
                files.append([f.name, stat.st_size, stat.st_mtime_ns])
    return short_hash(ref, files)


# How each kind of cached value is read back and written: tensors (torch, weights only) or JSON.
FORMATS: dict[str, tuple[Callable[[Path], Any], Callable[[Any, Path], Any]]] = {
    "pt": (load_torch, atomic_torch_save),
    "json": (load_json, atomic_json_save),
}


def cached(
    name: str, cache_dir: Path, key_parts: list[Any], compute: Callable[[], Any], fmt: str = "pt"
) -> Any:
    """``compute()`` once per key, stored atomically as ``NAME-KEY.FMT`` (``pt``: tensors or plain
    containers of them; ``json``: a JSON-serialisable value) and read back on every later call."""
    load, save = FORMATS[fmt]
    path = cache_dir / f"{name}-{short_hash(key_parts)}.{fmt}"
    value = load(path)
    if value is None:
        value = compute()
        save(value, path)
    return value
