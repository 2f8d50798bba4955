"""Does latency rank students the same twice? Two independent passes over 10 BERT students.

Builds 10 random-init BERT classifiers of different shapes (depth 1-4 × width 64-384, vocab 30522,
heads = width / 32, feed-forward 4 × width, 2 labels), measures each once with ``measure_latency``
in pass A, then again in pass B in the reverse order (so slow drifts of the machine's load do not
favour one end of the list), and prints per backend: both p50s, their relative difference, the
seconds each measurement took (for onnxruntime, including the ONNX export) and Spearman's ρ
between the two passes' rankings. Run from the repository root:

    .venv/bin/python benchmarks/latency_repeatability.py [--backend torch|onnxruntime|both]
        [--threads 1] [--sequence-length 64] [--warmup N] [--repeats N] [--rounds N]

Target on a shared 2-core machine: ρ ≥ 0.95 for both backends, a torch measurement of the 4 × 384
student ≤ 1.5 s (the warm-up, timed passes and memory pass; onnxruntime adds its export).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import pandas as pd
import torch

from autodistill.config import LatencySpec
from autodistill.measure.latency import measure_latency

# (depth, width): every depth and width of the range, with near-ties (2 × 64 against 1 × 128,
# 3 × 128 against 1 × 256) as a search meets them.
STUDENTS = [(1, 64), (2, 64), (1, 128), (3, 128), (2, 192), (4, 192), (1, 256), (3, 256), (2, 384), (4, 384)]


def build_student(depth: int, width: int) -> Any:
    from transformers import AutoModelForSequenceClassification, BertConfig

    config = BertConfig(
        vocab_size=30522,
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=width // 32,
        intermediate_size=4 * width,
    )
    config.num_labels = 2  # set after: transformers' typed config does not declare it
    torch.manual_seed(depth * 1000 + width)
    return AutoModelForSequenceClassification.from_config(config).eval()


def measure_pass(
    models: dict[str, Any], order: list[str], spec: LatencySpec
) -> tuple[dict[str, float], dict[str, float]]:
    """One measurement per student in ``order``: (p50 ms, seconds the measurement took) by student."""
    p50, seconds = {}, {}
    for name in order:
        start = time.perf_counter()
        p50[name] = measure_latency(models[name], spec).p50_ms
        seconds[name] = time.perf_counter() - start
    return p50, seconds


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's ρ as Pearson's r of the ranks: pandas' own method='spearman' needs scipy."""
    return float(a.rank().corr(b.rank()))


def report(backend: str, models: dict[str, Any], spec: LatencySpec) -> float:
    names = list(models)
    a, a_s = measure_pass(models, names, spec)
    b, b_s = measure_pass(models, names[::-1], spec)
    table = pd.DataFrame({"pass A p50 ms": a, "pass B p50 ms": b, "A s": a_s, "B s": b_s}).loc[names]
    table["B/A - 1"] = table["pass B p50 ms"] / table["pass A p50 ms"] - 1
    rho = spearman(table["pass A p50 ms"], table["pass B p50 ms"])
    seconds = [*a_s.values(), *b_s.values()]
    print(
        f"\n{backend}: {spec.threads} thread(s), batch 1 × {spec.sequence_length} tokens, "
        f"{spec.warmup} warm-up + {spec.repeats} timed passes in {spec.rounds} rounds"
    )
    print(
        table.to_string(
            formatters={
                "pass A p50 ms": "{:.3f}".format,
                "pass B p50 ms": "{:.3f}".format,
                "A s": "{:.2f}".format,
                "B s": "{:.2f}".format,
                "B/A - 1": "{:+.1%}".format,
            }
        )
    )
    spread = table["B/A - 1"].abs()
    print(
        f"Spearman ρ (A vs B) = {rho:.3f}; |B/A - 1| median {spread.median():.1%}, max {spread.max():.1%}; "
        f"seconds per measurement median {statistics.median(seconds):.2f}, max {max(seconds):.2f}"
    )
    return rho


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = LatencySpec()
    parser.add_argument("--backend", choices=["torch", "onnxruntime", "both"], default="both")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--sequence-length", type=int, default=defaults.sequence_length)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    args = parser.parse_args()

    models = {f"{d} × {w}": build_student(d, w) for d, w in STUDENTS}
    backends = ["torch", "onnxruntime"] if args.backend == "both" else [args.backend]
    print(f"torch {torch.__version__}; {len(models)} students, pass B in the reverse order of pass A")
    rhos = {}
    for backend in backends:
        spec = LatencySpec(
            backend=backend,
            threads=args.threads,
            sequence_length=args.sequence_length,
            warmup=args.warmup,
            repeats=args.repeats,
            rounds=args.rounds,
        )
        rhos[backend] = report(backend, models, spec)
    print("\n" + "; ".join(f"{k}: ρ = {v:.3f}" for k, v in rhos.items()))


if __name__ == "__main__":
    main()
