"""Memory and time of the causal-LM path at a real teacher's size: Llama 3's 128,256-token vocabulary.

The weights are random (no real 1B checkpoint is reachable here) and so are the token ids: these
figures measure memory and time, not quality.

(a) A Llama-architecture teacher built from a config with Llama 3's vocabulary (128,256), a small hidden
    size (256, 2 layers) and random weights; ``--blocks`` blocks (2,000) of ``--length`` tokens (512):
    - ``topk``: the product's ``teacher_topk`` builds the top-64 cache (peak resident memory, seconds,
      size on disk);
    - ``train``: one training step (and a second, timed) of a 2-layer student at batch 8 × 512, built and
      initialised from the teacher as a trial does, trained by ``distill`` with the causal-LM task's
      chunked forward pass and loss against that cache (read memory-mapped);
    - ``perplexity``: the product's ``perplexity`` of the teacher on 64 blocks.
    Target: each peak ≤ 3 GB on this 2-core machine.
(b) Llama-3.2-1B's published configuration (1.24B parameters) with random weights: the top-64 cache of
    16 blocks × 256 tokens, then a 10-step trial of a 2-layer student (the teacher's layers 0 and 15 at
    its width, as ``init: teacher-layers`` builds it) at batch 2 × 256, then its perplexity on 4 blocks.

Each part runs in its own process, so its peak resident memory (``ru_maxrss``: the Python interpreter,
torch and transformers included, about 0.5 GB) is its own. ``--quick`` runs (a) with 32 blocks (same
vocabulary and block length; perplexity on those 32, one training step) and skips (b). The last line printed is one JSON object whose keys name
their units.

    .venv/bin/python benchmarks/teacher_scale.py            # (a) and (b): about 15 min on 2 cores
    .venv/bin/python benchmarks/teacher_scale.py --quick    # (a) on 32 blocks: under 2 min
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LLAMA3_VOCAB = 128_256
TOP_K = 64
# Llama-3.2-1B's config.json (meta-llama/Llama-3.2-1B), the fields that shape memory and time.
LLAMA_3_2_1B = {
    "vocab_size": LLAMA3_VOCAB,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500_000.0,
    "tie_word_embeddings": True,
    "bos_token_id": 128_000,
    "eos_token_id": 128_001,
}
SMALL = {
    "vocab_size": LLAMA3_VOCAB,
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux


def teacher_model(fields: dict[str, Any]) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)  # the same random teacher in every part's process
    return LlamaForCausalLM(LlamaConfig(**fields)).eval()


def token_blocks(n: int, length: int) -> Any:
    import torch

    from autodistill.tasks.causal_lm.data import Blocks

    g = torch.Generator().manual_seed(1)
    return Blocks(torch.randint(0, LLAMA3_VOCAB, (n, length), generator=g))


def topk_cache(teacher: Any, blocks: Any, batch: int, workdir: Path, log: Any = print) -> Any:
    from autodistill.tasks.causal_lm.topk import teacher_topk

    key = [
        "teacher-scale",
        teacher.config.hidden_size,
        teacher.config.num_hidden_layers,
        *blocks.input_ids.shape,
    ]
    return teacher_topk(teacher, blocks, TOP_K, batch, "cpu", workdir, key, log)


def part_topk(args: argparse.Namespace) -> dict[str, Any]:
    teacher = teacher_model(LLAMA_3_2_1B if args.big else SMALL)
    blocks = token_blocks(args.blocks, args.length)
    before = peak_gb()
    start = time.perf_counter()
    topk_cache(teacher, blocks, args.batch, args.workdir)
    seconds = time.perf_counter() - start
    files = list(args.workdir.glob("teacher-topk-*.pt"))
    return {
        "topk_s": round(seconds, 1),
        "peak_topk_gb": round(peak_gb(), 2),
        "peak_before_topk_gb": round(before, 2),
        "topk_cache_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
        "teacher_params_m": round(sum(p.numel() for p in teacher.parameters()) / 1e6, 1),
    }


def part_train(args: argparse.Namespace) -> dict[str, Any]:
    from autodistill.distill.loop import DistillRecipe, distill
    from autodistill.distill.student import build_student, init_from_teacher, select_layers, teacher_arch
    from autodistill.tasks.causal_lm.task import CausalLM
    from autodistill.tasks.causal_lm.topk import TopkBatches

    teacher = teacher_model(LLAMA_3_2_1B if args.big else SMALL)
    blocks = token_blocks(args.blocks, args.length)
    targets = topk_cache(teacher, blocks, args.batch, args.workdir, log=lambda _: None)  # reused, mapped
    arch = teacher_arch(teacher.config)
    shape = type(arch)(depth=2, width=arch.width, heads=arch.heads, ffn=arch.ffn, kv_heads=arch.kv_heads)
    task = CausalLM()
    student = build_student(teacher.config, shape, 0, task.auto_class())
    init_from_teacher(student, teacher.state_dict(), arch, shape, select_layers(arch.depth, 2, "even"))
    del teacher  # a trial keeps its teacher on the CPU: (a)'s is 0.03 B parameters; (b) frees 4.9 GB here
    before = peak_gb()
    recipe = DistillRecipe(
        steps=args.steps,
        batch_size=args.train_batch,
        learning_rate=1e-3,
        lam=0.5,
        temperature=1.5,
        log_every=1,
    )
    seconds: list[float] = []
    last = [time.perf_counter()]

    def tick(step: int, loss: float) -> None:
        now = time.perf_counter()
        seconds.append(now - last[0])
        last[0] = now

    distill(student, TopkBatches(blocks, targets), task.loss, recipe, "cpu", tick, forward=task.forward)
    out = {
        "peak_train_gb": round(peak_gb(), 2),
        "peak_before_train_gb": round(before, 2),
        "train_steps": args.steps,
        "train_batch": f"{args.train_batch} x {args.length}",
        "first_step_s": round(seconds[0], 2),
        "step_s": round(sum(seconds[1:]) / (len(seconds) - 1) if len(seconds) > 1 else seconds[0], 2),
        "train_s": round(sum(seconds), 1),
        "student_params_m": round(sum(p.numel() for p in student.parameters()) / 1e6, 1),
    }
    if args.big:
        from autodistill.tasks.causal_lm.evaluation import perplexity

        start = time.perf_counter()
        out["student_perplexity"] = round(perplexity(student, token_blocks(4, args.length), 2, "cpu"), 1)
        out["perplexity_s"] = round(time.perf_counter() - start, 1)
    return out


def part_perplexity(args: argparse.Namespace) -> dict[str, Any]:
    from autodistill.tasks.causal_lm.evaluation import perplexity

    teacher = teacher_model(SMALL)
    blocks = token_blocks(min(64, args.blocks), args.length)
    before = peak_gb()
    start = time.perf_counter()
    value = perplexity(teacher, blocks, args.batch, "cpu")
    return {
        "perplexity_s": round(time.perf_counter() - start, 1),
        "peak_perplexity_gb": round(peak_gb(), 2),
        "peak_before_perplexity_gb": round(before, 2),
        "perplexity_blocks": f"{len(blocks)} x {args.length}",
        "teacher_perplexity": round(value, 1),  # random weights: about the vocabulary, ~1e5
    }


PARTS = {"topk": part_topk, "train": part_train, "perplexity": part_perplexity}


def run_part(name: str, workdir: Path, *flags: str) -> dict[str, Any]:
    """One part in its own process; its last stdout line is its JSON."""
    command = [sys.executable, __file__, "--part", name, "--workdir", str(workdir), *flags]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"teacher_scale: part {name} {' '.join(flags)} failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{name}{' (1B)' if '--big' in flags else ''}: {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="(a) on 32 blocks, no (b): under 2 minutes")
    parser.add_argument("--blocks", type=int, default=2000, help="(a)'s blocks")
    parser.add_argument("--length", type=int, default=512, help="(a)'s tokens per block")
    parser.add_argument("--skip-1b", action="store_true", help="leave out (b)")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--big", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--train-batch", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return
    import torch

    blocks = 32 if args.quick else args.blocks
    figures: dict[str, Any] = {
        "weights": "random (memory and time, not quality)",
        "vocab": LLAMA3_VOCAB,
        "top_k": TOP_K,
        "blocks": f"{blocks} x {args.length}",
        "threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory(prefix="teacher-scale-") as tmp:
        if not (args.quick or args.skip_1b):  # (b) first: the shorter part, and the one likelier to fail
            big = ["--big", "--blocks", "16", "--length", "256", "--batch", "4"]
            b_topk = run_part("topk", Path(tmp) / "b", *big)
            b_train = run_part("train", Path(tmp) / "b", *big, "--train-batch", "2", "--steps", "10")
            figures.update({f"b_{k}": v for k, v in {**b_topk, **b_train}.items()})
        small = ["--blocks", str(blocks), "--length", str(args.length)]
        for name in ("topk", "train", "perplexity"):
            steps = ["--steps", "1" if args.quick else "2"] if name == "train" else []
            figures.update(run_part(name, Path(tmp) / "a", *small, *steps))
        peaks = ("peak_topk_gb", "peak_train_gb", "peak_perplexity_gb")
        figures["meets_3gb"] = all(figures[k] <= 3.0 for k in peaks)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
