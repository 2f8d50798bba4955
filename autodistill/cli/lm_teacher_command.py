"""`autodistill lm-teacher`: turn a GGUF file or any causal-LM checkpoint into a teacher directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from autodistill.cli.common import fail, quiet_libraries
from autodistill.util.errors import first_line
from autodistill.util.files import replaceable, writable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lm-teacher",
        help="turn a GGUF file or a causal-LM checkpoint into a safetensors teacher directory",
        description="Load a causal language model (a .gguf file, dequantised to float32; a directory holding "
        "one; a save_pretrained directory; or a hub id) and write it as a float32 safetensors directory with its "
        "tokenizer and teacher_card.json, for `task: causal-lm` searches. Rerunning with the same source (same "
        "bytes) reuses the directory.",
    )
    p.add_argument(
        "source", help="a .gguf file, a directory holding one, a checkpoint directory, or a hub id"
    )
    p.add_argument("--out", required=True, type=Path, help="directory to write the teacher to")
    p.add_argument("--gguf-file", help="the GGUF file's name inside SOURCE's directory or hub repository")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="accept a checkpoint whose weights are pickle files (off: safetensors only; pickle can run code)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let transformers run the checkpoint repository's own code (off: it is arbitrary code)",
    )


def cmd_lm_teacher(args: argparse.Namespace) -> int:
    if not writable(args.out):
        return fail([f"--out {args.out}: cannot write there; choose a writable directory"])
    if not replaceable(args.out, "teacher_card.json"):
        return fail(
            [
                f"--out {args.out}: it holds other files, which would be replaced; choose an empty or new directory"
            ]
        )
    quiet_libraries()
    from autodistill.deliver.lm_teacher import prepare_lm_teacher

    try:
        card = prepare_lm_teacher(
            args.source,
            args.out,
            gguf_file=args.gguf_file,
            allow_pickle=args.allow_pickle,
            trust_remote_code=args.trust_remote_code,
            log=lambda m: print(m, flush=True),
        )
    except (OSError, ValueError) as exc:
        return fail([first_line(exc)])
    print(
        f"teacher: {args.out} — {card['architecture']}, {card['layers']} layers × {card['width']}, "
        f"{card['heads']} heads ({card['kv_heads']} key/value), vocabulary {card['vocab']}"
    )
    return 0
