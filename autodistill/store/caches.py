"""The study's caches on disk: the teacher's outputs and reference metrics, computed once and reused by
every trial, on resume, and by every worker that shares the directory. Each is keyed by what shapes it,
computed under a lock file and written atomically."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill.util.files import atomic_json_save, atomic_torch_save, compute_once, load_json, load_torch
from autodistill.util.hashing import short_hash

# The files that shape a teacher's outputs: config, weights, tokenizer (vocab.txt, merges.txt, *.model).
TEACHER_FILES = {".json", ".safetensors", ".bin", ".txt", ".model"}


def teacher_fingerprint(ref: str) -> str:
    """Identifies the teacher: its config, weight and tokenizer files by content, or the hub id.

    By content, not by sizes and times: a teacher retrained into the same directory keeps its file sizes,
    and a copy or a ``touch`` changes times alone. Hashing takes about 0.5 s per 100 MB of weights.
    """
    path = Path(ref)
    if path.is_file():  # a one-file teacher (a GGUF file)
        return short_hash([path.name, file_digest(path)])
    if not path.is_dir():
        return short_hash(ref)
    files = [
        [f.name, file_digest(f)] for f in sorted(path.iterdir()) if f.is_file() and f.suffix in TEACHER_FILES
    ]
    return short_hash(files)


# SHA-256 of each file this process hashed, by where it is and what the file system says of it: a 5 GB
# teacher is read once per process (about 25 s), not once per fingerprint that names it.
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (hashlib.file_digest needs Python 3.11), once per process.

    Read again when the file's device, inode, size, modification or change time (ns) changed: a file
    rewritten in place, or replaced by another (a teacher retrained into the same directory), is hashed
    afresh, even when its size and modification time were put back (the change time cannot be).
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


# How each kind of cached value is read back and written: tensors (torch, weights only) or JSON.
FORMATS: dict[str, tuple[Callable[[Path], Any], Callable[[Any, Path], Any]]] = {
    "pt": (load_torch, atomic_torch_save),
    "json": (load_json, atomic_json_save),
}


def cached(
    name: str,
    cache_dir: Path,
    key_parts: list[Any],
    compute: Callable[[], Any],
    fmt: str = "pt",
    log: Callable[[str], None] | None = None,
) -> Any:
    """``compute()`` once per key, stored atomically as ``NAME-KEY.FMT`` (``pt``: tensors or plain
    containers of them; ``json``: a JSON-serialisable value) and read back on every later call.

    Safe for workers sharing ``cache_dir``: the first computes while the others wait for its file.
    ``log`` (when given) is told whether the value was computed or reused.
    """
    load, save = FORMATS[fmt]
    return compute_once(cache_dir / f"{name}-{short_hash(key_parts)}.{fmt}", load, save, compute, log)
