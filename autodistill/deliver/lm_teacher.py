"""A causal-LM teacher as a plain safetensors directory: from a GGUF file (llama.cpp's quantised
format) or any checkpoint transformers loads, dequantised to float32, with its tokenizer and a card.

The directory is built beside ``out`` and swapped into place whole; a later call with the same source
(same bytes, by SHA-256) reuses it instead of converting again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill import __version__
from autodistill.store.caches import TEACHER_FILES, file_digest
from autodistill.util.errors import first_line
from autodistill.util.files import atomic_json_save, replaceable, swap_into_place, temporary_sibling
from autodistill.util.paths import looks_local

CARD = "teacher_card.json"
WHAT = "an autodistill teacher"
# What a hub checkpoint needs: config, safetensors weights, tokenizer (no pickle files).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]


def _locate(source: str, gguf_file: str | None, allow_download: bool) -> tuple[Path, str | None]:
    """(local directory or file to hash, GGUF file name within the directory or None).

    Raises:
        ValueError: a missing file, or a directory with several GGUF files and none named.
    """
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"{source}: a file must be a .gguf; give a checkpoint as its directory")
        if gguf_file not in (None, path.name):
            raise ValueError(f"--gguf-file {gguf_file}: {source} is a file already; leave --gguf-file out")
        return path.parent, path.name
    if looks_local(source) and not path.is_dir():
        raise ValueError(
            f"{source}: no such file or directory; give a .gguf file, a checkpoint directory or a hub id"
        )
    if not path.is_dir():
        if not allow_download:
            raise ValueError(f"{source}: not a local file or directory (hub downloads are off)")
        from huggingface_hub import snapshot_download

        try:  # the real hub path: only what the conversion reads, never pickle weights
            local = snapshot_download(source, allow_patterns=[gguf_file] if gguf_file else HUB_PATTERNS)
        except Exception as exc:
            raise ValueError(f"{source}: cannot download it ({first_line(exc)})") from None
        path = Path(local)
    if gguf_file is not None:
        if not (path / gguf_file).is_file():
            found = sorted(p.name for p in path.glob("*.gguf"))
            raise ValueError(
                f"--gguf-file {gguf_file}: not in {source}; its GGUF files are {found or 'none'}"
            )
        return path, gguf_file
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if (path / "config.json").is_file():
        return path, None
    if len(ggufs) == 1:
        return path, ggufs[0]
    if ggufs:
        raise ValueError(
            f"--gguf-file: {source} holds {len(ggufs)} GGUF files ({', '.join(ggufs)}); name one"
        )
    raise ValueError(
        f"{source}: neither a config.json nor a .gguf file in it; give a checkpoint or a GGUF file"
    )


def source_digest(directory: Path, gguf_file: str | None) -> str:
    """SHA-256 of the GGUF file, or of a checkpoint's config, weight and tokenizer files (name and
    content digest each, in name order)."""
    if gguf_file is not None:
        return file_digest(directory / gguf_file)
    files = [
        [f.name, file_digest(f)]
        for f in sorted(directory.iterdir())
        if f.is_file() and f.suffix in TEACHER_FILES
    ]
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


def clear_quantizer_marks(model: Any) -> None:
    """Make a model loaded from a GGUF file save as the plain float model it now is.

    transformers 5 loads a GGUF file through its GGUF quantizer. Loaded plainly, even when every weight
    was dequantised (no GGUF kernels installed), the model keeps ``hf_quantizer`` (whose
    ``is_serializable()`` is False, so ``save_pretrained`` raises "The model is quantized with gguf and
    is not serializable"), ``quantization_method``, ``is_quantized`` = True, and a config
    ``quantization_config`` that would send the saved directory back through the quantizer. Loaded
    with ``GgufConfig(dequantize=True)``, as here, transformers drops all but ``is_quantized`` itself;
    clearing them again is harmless, and keeps older and newer versions saving. These are the marks
    the quantizers' own ``remove_quantization_config`` clears.
    """
    for name in ("hf_quantizer", "quantization_method"):
        if name in vars(model):
            delattr(model, name)
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _load(
    source: str, directory: Path, gguf_file: str | None, allow_pickle: bool, trust_remote_code: bool
) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from autodistill.tasks.classification.teacher import dtype_kwarg

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, **dtype_kwarg()}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
        try:  # transformers ≥ 5 keeps GGUF blocks packed when it has kernels for them: unpack all
            from transformers import GgufConfig

            kwargs["quantization_config"] = GgufConfig(dequantize=True)
        except ImportError:  # older versions always dequantise
            pass
    else:
        kwargs["use_safetensors"] = None if allow_pickle else True
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(
            directory, gguf_file=gguf_file, trust_remote_code=trust_remote_code
        )
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError with long texts
        raise ValueError(f"{source}: cannot load it as a causal language model ({first_line(exc)})") from None
    clear_quantizer_marks(model)
    packed = [n for n, p in model.named_parameters() if p.dtype != torch.float32]
    if packed:
        raise ValueError(
            f"{source}: weights {packed[:3]} are not float32 after loading; cannot dequantise them"
        )
    return model.eval(), tokenizer


def card_for(model: Any, source: str, gguf_file: str | None, digest: str) -> dict[str, Any]:
    """The facts ``teacher_card.json`` holds: the source, and the shape the students are cut from."""
    config = model.config
    heads = int(config.num_attention_heads)
    return {
        "kind": "causal-lm",
        "source": source,
        "gguf_file": gguf_file,
        "source_sha256": digest,
        "architecture": type(model).__name__,
        "model_type": config.model_type,
        "layers": int(config.num_hidden_layers),
        "width": int(config.hidden_size),
        "heads": heads,
        "kv_heads": int(getattr(config, "num_key_value_heads", None) or heads),
        "ffn": int(config.intermediate_size),
        "vocab": int(config.vocab_size),
        "context": int(getattr(config, "max_position_embeddings", 0)),
        "params": int(sum(p.numel() for p in model.parameters())),
        "dtype": "float32",
        "autodistill_version": __version__,
    }


def existing_card(out: Path, digest: str) -> dict[str, Any] | None:
    """The card of a teacher already converted from the same source bytes in ``out``, if any."""
    path = out / CARD
    if not path.is_file():
        return None
    card = json.loads(path.read_text())
    return card if card.get("source_sha256") == digest else None


def prepare_lm_teacher(
    source: str,
    out: Path,
    gguf_file: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    allow_download: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Convert ``source`` into a float32 safetensors teacher directory ``out``, or reuse it.

    Args:
        source: a .gguf file, a directory holding one (or ``gguf_file``), a checkpoint directory, or a
            hub id (with ``gguf_file`` to take one GGUF file of a hub repository).
        out: the teacher directory to write: ``config.json``, ``model.safetensors``, the tokenizer,
            ``generation_config.json`` and ``teacher_card.json``.
        gguf_file: the GGUF file's name inside ``source``'s directory or hub repository.
        allow_pickle: accept a checkpoint whose weights are only pickle files (which can run code).

    Returns:
        The card: source, its SHA-256, architecture, layers, width, heads, kv heads, vocabulary,
        parameters, dtype (see ``card_for``).

    Raises:
        ValueError: the source cannot be found or loaded as a causal LM, or ``out`` holds files that are
            not an earlier teacher of ours (never deleted).
    """
    if not replaceable(out, CARD):  # checked before the minutes of loading
        raise ValueError(f"--out {out}: holds files that are not {WHAT}; choose an empty or new directory")
    directory, gguf = _locate(source, gguf_file, allow_download)
    digest = source_digest(directory, gguf)
    card = existing_card(out, digest)
    if card is not None:
        log(f"teacher: reusing {out} (converted from the same {source} before)")
        return card
    what = f"{directory / gguf} (GGUF, dequantised)" if gguf else str(directory)
    log(f"teacher: converting {what} to a float32 safetensors directory {out}")
    model, tokenizer = _load(source, directory, gguf, allow_pickle, trust_remote_code)
    card = card_for(model, source, gguf, digest)
    tmp = temporary_sibling(out)
    try:
        model.config.architectures = [type(model).__name__]
        model.save_pretrained(tmp)  # safetensors: transformers' default, the only format it writes now
        tokenizer.save_pretrained(tmp)
        atomic_json_save(card, tmp / CARD)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_into_place(tmp, out, CARD, WHAT)
    log(
        f"teacher: {card['layers']} layers × {card['width']}, {card['params'] / 1e6:.0f}M parameters in {out}"
    )
    return card
