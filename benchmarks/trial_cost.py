"""What one trial costs: a 2-layer × 128 student, 300 steps, batch 32, SST-2, the shared MiniLM teacher.

Prints wall time split into the teacher cache (paid once per study), training, evaluation, size,
latency measurement and MLflow logging. Run from the repository root:

    .venv/bin/python benchmarks/trial_cost.py [--repeats 3] [--steps 300]

Target on a 2-core machine: ≤ 30 s per trial after the cache, everything but training ≤ 10% of it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from autodistill.config.spacefile import load_space
from autodistill.distill.student import StudentArch
from autodistill.search.inputs import inspect_inputs
from autodistill.search.preparation import prepare_job
from autodistill.search.sampling import TrialSettings
from autodistill.search.trial import run_trial
from autodistill.store.tracking import Tracker

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="trials to time after the cache")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    space = load_space(
        Path(__file__).resolve().parents[1] / "search_spaces" / "bert.yaml",
        [
            f"train.steps={args.steps}",
            "train.batch_size=32",
            "dataset.max_eval_examples=872",
            "distill.hidden_weight=0",
        ],
        teacher=str(SHARED / "models" / "minilm-sst2-teacher"),
        dataset=str(SHARED / "data" / "sst2"),
    ).config
    settings = TrialSettings(StudentArch(depth=2, width=128, heads=2, ffn=512), 0.5, 2.0, 1e-3)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, problems = inspect_inputs(space)
        assert inputs is not None, problems
        start = time.perf_counter()
        job = prepare_job(space, inputs, Path(tmp) / "cache", print)
        cache_seconds = time.perf_counter() - start
        tracker = Tracker(f"sqlite:///{tmp}/mlflow.db", "bench", Path(tmp) / "artifacts")
        tracker.start_study({})
        rows = []
        for i in range(args.repeats):
            start = time.perf_counter()
            outcome = run_trial(settings, job)
            log_start = time.perf_counter()
            run_id = tracker.start_trial(i, settings.as_params())
            tracker.log_curve(run_id, "train_loss", outcome.losses)
            tracker.log_metrics(run_id, outcome.metrics)
            tracker.end_trial(run_id, "COMPLETE")
            timings = {**outcome.timings, "logging": time.perf_counter() - log_start}
            timings["total"] = time.perf_counter() - start
            rows.append((timings, outcome.metrics["accuracy"]))

    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, device {job.device}; "
        f"{args.steps} steps × batch 32, seq ≤ 64 (dynamic padding)"
    )
    print(
        f"teacher cache (once per study: tokenise + logits on {len(job.data.train)} examples + reference): {cache_seconds:.1f} s"
    )
    print(f"{'phase':<10} {'median s':>9} {'min s':>7} {'max s':>7}   over {args.repeats} trials")
    for phase in ["build", "train", "eval", "size", "latency", "logging", "total"]:
        values = [t[phase] for t, _ in rows]
        print(f"{phase:<10} {statistics.median(values):9.2f} {min(values):7.2f} {max(values):7.2f}")
    totals = [t["total"] for t, _ in rows]
    overhead = [(t["total"] - t["train"]) / t["total"] for t, _ in rows]
    print(f"non-training share of a trial: median {statistics.median(overhead):.1%}")
    print(
        f"accuracy: {', '.join(f'{a:.4f}' for _, a in rows)}; trial total median {statistics.median(totals):.1f} s"
    )


if __name__ == "__main__":
    main()
