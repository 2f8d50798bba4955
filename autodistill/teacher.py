"""The teacher: load it, check it is a classifier, and compute its logits once per study (cached)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.cache import atomic_torch_save, load_torch


class TeacherError(ValueError):
    """The teacher cannot be used; the message names the flag or key to change."""


@dataclass
class TeacherInfo:
    """What validation needs to know, read from the config alone (no weights loaded)."""

    config: Any
    num_labels: int
    label2id: dict[str, int]


def _looks_local(ref: str) -> bool:
    return Path(ref).exists() or ref.startswith((".", "/", "~"))


def inspect_teacher(
    ref: str | None, trust_remote_code: bool = False, allow_pickle: bool = False
) -> TeacherInfo:
    """Read the teacher's config and check that it is a sequence classifier with loadable weights.

    Raises:
        TeacherError: no teacher given, path missing, no config, not a sequence classifier, or weights
            only in pickle form (which can run code when loaded) without ``allow_pickle``.
    """
    from transformers import AutoConfig

    if not ref:
        raise TeacherError(
            "no teacher given: pass --teacher PATH_OR_HUB_ID or set teacher: in the space file"
        )
    if _looks_local(ref) and not Path(ref).is_dir():
        raise TeacherError(
            f"--teacher {ref}: no such directory; give a save_pretrained directory or a hub id"
        )
    try:
        config = AutoConfig.from_pretrained(ref, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError/ValueError/HTTP errors with long texts
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TeacherError(f"--teacher {ref}: cannot read its config.json ({first})") from None
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise TeacherError(
            f"--teacher {ref}: it is a {', '.join(architectures)}, not a sequence classifier; "
            "fine-tune a *ForSequenceClassification model first"
        )
    if Path(ref).is_dir() and not allow_pickle and not any(Path(ref).glob("*.safetensors")):
        raise TeacherError(
            f"--teacher {ref}: no safetensors weights, only pickle files, which can run code when loaded; "
            "re-save it with save_pretrained(safe_serialization=True) or pass --allow-pickle if you trust it"
        )
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(ref, trust_remote_code=trust_remote_code)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TeacherError(
            f"--teacher {ref}: cannot load its tokenizer ({first}); save the tokenizer beside the model"
        ) from None
    label2id = {str(k): int(v) for k, v in (getattr(config, "label2id", None) or {}).items()}
    return TeacherInfo(config=config, num_labels=int(config.num_labels), label2id=label2id)


def load_teacher(ref: str, trust_remote_code: bool = False, allow_pickle: bool = False) -> tuple[Any, Any]:
    """The teacher model (safetensors weights only, unless ``allow_pickle``) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        ref, use_safetensors=None if allow_pickle else True, trust_remote_code=trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(ref, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer


def teacher_fingerprint(ref: str) -> str:
    """Identifies the teacher's weights: config and weight files' sizes and times, or the hub id."""
    h = hashlib.sha256(ref.encode())
    path = Path(ref)
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.suffix in {".json", ".safetensors", ".bin"}:
                stat = f.stat()
                h.update(json.dumps([f.name, stat.st_size, stat.st_mtime_ns]).encode())
    return h.hexdigest()[:16]


def cached_teacher_logits(compute: Any, cache_dir: Path, key_parts: list[Any]) -> Any:
    """``compute()`` once per key; the tensor is stored atomically and reused by every trial and on resume."""
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:16]
    path = cache_dir / f"teacher-logits-{key}.pt"
    cached = load_torch(path)
    if cached is not None:
        return cached
    logits = compute()
    atomic_torch_save(logits, path)
    return logits
