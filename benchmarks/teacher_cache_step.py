"""What caching the teacher's outputs saves per training step: SST-2, the shared MiniLM teacher.

One training loop (``distill.loop.distill``, as every trial runs it), two sources of the teacher's
outputs, everything else equal:

- ``cached``: the teacher's logits and hidden states computed once per study (what autodistill does);
- ``live``: the teacher run on every batch for its logits and hidden states (what a plain
  ``Trainer``-style distillation loop does).

Student 2 × 128 from random init, batch 32, ≤ 64 tokens, λ = 0.5, T = 2, hidden-state loss weight 1
(the teacher's layers 2 and 5). Repeats alternate the two sides (cached, live, cached, live, …) so
that load from other work falls on both; seconds per step are the median over repeats, with the
range. The cache's one-off cost is printed beside it.

    .venv/bin/python benchmarks/teacher_cache_step.py [--steps 60] [--repeats 3] [--hidden-weight 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autodistill.config.spacefile import load_space
from autodistill.distill.loop import DistillRecipe, HiddenMatch, distill
from autodistill.distill.student import StudentArch, build_student, select_layers
from autodistill.distill.teacher_states import TeacherStates
from autodistill.search.inputs import inspect_inputs
from autodistill.search.preparation import prepare_job

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@dataclass
class LiveTeacherSet:
    """The training examples with the teacher's logits computed now, for each batch (no cache)."""

    cached: Any  # the task's training set: its tokens and labels are used, its cached logits are not
    teacher: Any

    def __len__(self) -> int:
        return len(self.cached)

    @torch.no_grad()
    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = self.cached.tokens.batch(index)
        self.teacher.eval()
        logits = self.teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return {**batch, "teacher_logits": logits.float()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternated")
    parser.add_argument("--hidden-weight", type=float, default=1.0, help="0 leaves the hidden states out")
    args = parser.parse_args()

    space = load_space(
        ROOT / "search_spaces" / "bert.yaml",
        [f"train.steps={args.steps}", "train.batch_size=32", f"distill.hidden_weight={args.hidden_weight}"],
        teacher=str(SHARED / "models" / "minilm-sst2-teacher"),
        dataset=str(SHARED / "data" / "sst2"),
    ).config
    arch = StudentArch(depth=2, width=128, heads=4, ffn=512)
    recipe = DistillRecipe(
        steps=args.steps,
        batch_size=32,
        learning_rate=1e-3,
        lam=0.5,
        temperature=2.0,
        hidden_weight=args.hidden_weight,
    )
    with tempfile.TemporaryDirectory() as tmp:
        inputs, problems = inspect_inputs(space)
        assert inputs is not None, problems
        start = time.perf_counter()
        job = prepare_job(space, inputs, Path(tmp) / "cache", print)
        cache_seconds = time.perf_counter() - start
        teacher = job.teacher
        layers = select_layers(job.teacher_arch.depth, arch.depth, space.student.layer_selection)
        sides: dict[str, tuple[Any, Any]] = {
            "cached": (job.data.train, job.teacher_states),
            "live": (
                LiveTeacherSet(job.data.train, teacher),
                TeacherStates(data=job.data.train_tokens, layers=layers, teacher=teacher),
            ),
        }
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.repeats):
            for name, (train, states) in sides.items():
                student = build_student(job.teacher_config, arch, 0, job.task.auto_class())
                hidden = HiddenMatch(states, layers, job.teacher_arch.width) if args.hidden_weight else None
                result = distill(student, train, job.task.loss, recipe, job.device, hidden=hidden)
                seconds[name].append(result.seconds / args.steps)
                print(
                    f"{name}: {result.seconds / args.steps:.3f} s/step (final loss {result.losses[-1]:.3f})"
                )

    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {job.device}; student 2 × 128, "
        f"batch 32, ≤ 64 tokens, {args.steps} steps, hidden-state weight {args.hidden_weight:g} "
        f"(teacher layers {layers}), {args.repeats} repeats per side, alternated"
    )
    print("| teacher's outputs | s per step, median | min–max |\n| --- | --- | --- |")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f}–{max(values):.3f} |")
    ratios = [live / cached for cached, live in zip(seconds["cached"], seconds["live"], strict=True)]
    print(
        f"live / cached, pair by pair: {', '.join(f'{r:.2f}×' for r in ratios)} "
        f"(median {statistics.median(ratios):.2f}×)"
    )
    print(
        f"the cache's one-off cost (tokenise, logits and hidden states on {len(job.data.train)} examples, "
        f"teacher reference): {cache_seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
