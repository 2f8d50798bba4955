"""What every task checks and does with its teacher: read its config and tokenizer without loading
weights, refuse pickle weights unless allowed, and load it in float32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodistill.util.errors import first_line
from autodistill.util.leftovers import clean_leftovers
from autodistill.util.paths import looks_local

FLOAT32 = "float32"


class TeacherError(ValueError):
    """The teacher cannot be used; the message names the flag or key to change."""


def _dtype_name() -> str:
    """transformers 4.56 renamed ``torch_dtype`` to ``dtype`` (the old name now logs a deprecation)."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def dtype_kwarg(name: str = FLOAT32) -> dict[str, Any]:
    """The ``from_pretrained``/``from_config`` keyword that loads or builds a model in ``name``."""
    return {_dtype_name(): torch_dtype(name)}


def read_teacher_config(
    ref: str | None, trust_remote_code: bool, allow_pickle: bool, heads: tuple[str, ...], fix: str
) -> Any:
    """The teacher's config, after checking it names a ``*{head}`` model whose weights and tokenizer
    load (no weights are loaded here).

    Args:
        heads: the architecture suffixes the task accepts, e.g. ("ForSequenceClassification",); the
            first names it in errors.
        fix: how to get such a teacher, ending the error when the architecture is another.

    Raises:
        TeacherError: no teacher given, path missing, no config, another architecture, weights only in
            pickle form (which can run code when loaded) without ``allow_pickle``, no tokenizer.
    """
    from transformers import AutoConfig, AutoTokenizer

    if not ref:
        raise TeacherError(
            "no teacher given: pass --teacher PATH_OR_HUB_ID or set teacher: in the space file"
        )
    if looks_local(ref) and not Path(ref).is_dir():
        clean_leftovers(Path(ref).parent)  # a teacher set aside by a killed `teacher` run comes back
        if not Path(ref).is_dir():
            raise TeacherError(
                f"--teacher {ref}: no such directory; give a save_pretrained directory or a hub id"
            )
    try:
        config = AutoConfig.from_pretrained(ref, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError/ValueError/HTTP errors with long texts
        raise TeacherError(f"--teacher {ref}: cannot read its config.json ({first_line(exc)})") from None
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith(heads) for a in architectures):
        raise TeacherError(
            f"--teacher {ref}: it is a {', '.join(architectures)}, not a *{heads[0]} model; {fix}"
        )
    if Path(ref).is_dir() and not allow_pickle and not any(Path(ref).glob("*.safetensors")):
        raise TeacherError(
            f"--teacher {ref}: no safetensors weights, only pickle files, which can run code when loaded; "
            "re-save it with save_pretrained(safe_serialization=True) or pass --allow-pickle if you trust it"
        )
    try:
        AutoTokenizer.from_pretrained(ref, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise TeacherError(
            f"--teacher {ref}: cannot load its tokenizer ({first_line(exc)}); save the tokenizer beside the model"
        ) from None
    # The students are built from this config: a half-precision teacher's dtype would make them half
    # models too, whose training on CPU ends in non-finite losses.
    setattr(config, _dtype_name(), torch_dtype(FLOAT32))
    return config


def inference_dtype(ref: str, trust_remote_code: bool, half_precision: bool) -> str:
    """The dtype a teacher runs its inference in: ``bfloat16`` for a checkpoint saved in bfloat16 (how 1B+
    models are shipped and served) when the job runs half precision (``half_precision_on``: a GPU with
    bfloat16, ``train.mixed_precision`` on), else float32 (always on a CPU, where bfloat16 is slow and
    distilling from half-precision outputs gave non-finite losses). Its cached targets stay float16/float32.
    """
    if not half_precision:
        return FLOAT32
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(ref, trust_remote_code=trust_remote_code)
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return "bfloat16" if str(saved).removeprefix("torch.") == "bfloat16" else FLOAT32


def load_pretrained(
    auto_class: Any, ref: str, trust_remote_code: bool, allow_pickle: bool, dtype: str = FLOAT32
) -> tuple[Any, Any]:
    """The teacher model in eval mode (safetensors weights only, unless ``allow_pickle``) and its tokenizer.

    ``dtype`` defaults to float32 whatever the checkpoint was saved in: transformers 5 loads a float16 or
    bfloat16 checkpoint as such, and distilling from half-precision logits on CPU gives non-finite losses.
    """
    from transformers import AutoTokenizer

    model = auto_class.from_pretrained(
        ref,
        use_safetensors=None if allow_pickle else True,
        trust_remote_code=trust_remote_code,
        **dtype_kwarg(dtype),
    )
    tokenizer = AutoTokenizer.from_pretrained(ref, trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer
