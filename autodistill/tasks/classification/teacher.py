"""The classification teacher: check from its config that it is a usable classifier, and load it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.util.errors import first_line
from autodistill.util.paths import looks_local


class TeacherError(ValueError):
    """The teacher cannot be used; the message names the flag or key to change."""


@dataclass
class TeacherInfo:
    """What validation needs to know, read from the config alone (no weights loaded)."""

    config: Any
    num_labels: int
    label2id: dict[str, int]


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
    if looks_local(ref) and not Path(ref).is_dir():
        raise TeacherError(
            f"--teacher {ref}: no such directory; give a save_pretrained directory or a hub id"
        )
    try:
        config = AutoConfig.from_pretrained(ref, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError/ValueError/HTTP errors with long texts
        raise TeacherError(f"--teacher {ref}: cannot read its config.json ({first_line(exc)})") from None
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
        raise TeacherError(
            f"--teacher {ref}: cannot load its tokenizer ({first_line(exc)}); save the tokenizer beside the model"
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
