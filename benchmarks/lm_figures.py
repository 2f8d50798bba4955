"""The causal-LM demo's figures (issue 12, "Measured, in the README's figures"), from a finished
``make demo-lm`` study (SmolLM2-135M → students on Shakespeare's tragedies):

1. A hand-made DistilGPT2-style student against the front: every other teacher layer
   (``teacher-layers`` init, depth = teacher depth // 2, the space's ``layer_selection``), λ=0.5, T=2, a
   fixed learning rate (``--lr``, default 5e-4, inside the demo's searched 1e-4..2e-3 and near its
   log-midpoint 4.5e-4), no hidden-state loss, the same per-trial budget (the study's stored space:
   steps, batch, blocks, validation). It runs through the product's own trial code (inspect_inputs →
   prepare_job → run_trial), reusing the study's cache (the teacher's top-k targets are not
   recomputed). Is some front trial at least as good on perplexity ↓, latency_ms ↓ and size_mb ↓, and
   better on one? Answered with the run's own latencies and with the latency of the hand-made shape
   and of every front shape (and the teacher's) re-measured together: ``--passes`` interleaved passes
   (rotated, every other one reversed), median per shape, with the task's measure
   (``decode_latency``: batch-1 decoding per token with the KV cache) on random-init models of the
   same shapes (latency depends on the shape, not the weights).
2. The front student with the lowest validation perplexity at ≤ ¼ of the teacher's decode latency,
   trained at full length with ``autodistill train TRIAL --out OUT --steps N`` (a subprocess, as a user
   runs it; its output in OUT/lm-figures-train.log): test perplexity before (the search's short run)
   and after, against the teacher's, and the latency ratio.
3. The cost of one trial (each complete trial's timings and wall time: median, min–max) and of the
   teacher's cache at the demo's settings: the size on disk of ``cache/lm-blocks-*.pt`` and
   ``cache/teacher-topk-*.pt``, and the seconds to build them, measured here: reading and tokenising
   the corpus (no cache) and ``compute_topk`` over the study's training blocks with the teacher once.

Everything is printed as Markdown tables; the last line is a JSON object with the key figures.

    .venv/bin/python benchmarks/lm_figures.py [--out runs/shakespeare-lm-demo] [--train-steps 300]
        [--lr 5e-4] [--passes 3] [--skip-train] [--resume]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ("perplexity", "latency_ms", "size_mb")  # all minimised
TRAIN_LINE = re.compile(
    r"trial (\d+): perplexity ([\d.]+) after the search's short run → ([\d.]+) after (\d+) steps "
    r"\(validation\); test perplexity ([\d.]+)"
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats with 4 significant digits unless already formatted."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def span(values: list[float], digits: int = 1) -> str:
    """median (min–max)"""
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def shape_name(arch: Any) -> str:
    kv = f", {arch.kv_heads} kv" if arch.kv_heads is not None else ""
    return f"{arch.depth}×{arch.width} ({arch.heads} heads{kv}, ffn {arch.ffn})"


def trial_settings(trial: Any) -> Any:
    from autodistill.search.sampling import TrialSettings

    return TrialSettings.from_params(trial.user_attrs["settings"])


def point(metrics: dict[str, float], latency: float | None = None) -> list[float]:
    return [
        metrics["perplexity"],
        metrics["latency_ms"] if latency is None else latency,
        metrics["size_mb"],
    ]


def dominates(a: list[float], b: list[float]) -> bool:
    """``a`` dominates ``b`` (all objectives minimised): no worse on each, better on one."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def latency_together(shapes: dict[str, Any], teacher_config: Any, spec: Any, passes: int) -> dict[str, float]:
    """Each shape's decode latency measured in one session: ``passes`` passes over all shapes, each in
    another order (rotated, every other one reversed), median per shape (random-init models)."""
    from transformers import AutoModelForCausalLM

    from autodistill.distill.student import build_student
    from autodistill.measure.decode import decode_latency

    models = {
        name: build_student(teacher_config, arch, 0, AutoModelForCausalLM) for name, arch in shapes.items()
    }
    names = list(models)
    seen: dict[str, list[float]] = {name: [] for name in names}
    for k in range(passes):
        order = names[k % len(names) :] + names[: k % len(names)]
        for name in reversed(order) if k % 2 else order:
            seen[name].append(decode_latency(models[name], spec).p50_ms)
            log(f"  pass {k + 1}/{passes}: {name} {seen[name][-1]:.2f} ms")
    del models
    return {name: statistics.median(values) for name, values in seen.items()}


def cache_files(cache: Path) -> dict[str, float]:
    """Size in bytes of each lm-blocks and teacher-topk file in the study's cache."""
    return {
        f.name: f.stat().st_size
        for pattern in ("lm-blocks-*.pt", "teacher-topk-*.pt")
        for f in sorted(cache.glob(pattern))
    }


def demo_topk_seconds(study: Any, out: Path, topk_file: Path) -> float | None:
    """How long the search took to its top-k targets: from the start of its MLflow parent run (the
    search opens it before loading the teacher) to the write of the top-k file it used. An upper bound:
    it includes loading the teacher and reading the cached token blocks."""
    from mlflow import MlflowClient

    from autodistill.store.studies import tracking_uri

    run_id = study.user_attrs.get("mlflow_parent_run_id")
    if not run_id or not topk_file.is_file():
        return None
    try:
        started = MlflowClient(tracking_uri(study, None, str(out))).get_run(run_id).info.start_time / 1000
    except Exception as exc:  # a moved or unreadable tracking store: the figure is left out
        log(f"note: no MLflow parent run start ({exc})")
        return None
    written = topk_file.stat().st_mtime
    first = min((t.datetime_start.timestamp() for t in study.trials if t.datetime_start), default=None)
    if first is not None and written > first:  # written after the search's trials began: not the search's
        return None
    seconds = written - started
    return seconds if seconds > 0 else None


def watch_caches() -> dict[str, dict[str, Any]]:
    """Record which cache files the product reads or computes, and how long each computation takes:
    ``cached`` is wrapped where the LM task and ``prepare_job`` call it (observation only)."""
    import autodistill.search.preparation as preparation
    import autodistill.store.caches as caches
    import autodistill.tasks.causal_lm.data as data
    import autodistill.tasks.causal_lm.topk as topk
    from autodistill.util.hashing import short_hash

    original = caches.cached
    seen: dict[str, dict[str, Any]] = {}

    def watched(name: str, cache_dir: Path, key_parts: list[Any], compute: Any, fmt: str = "pt") -> Any:
        record: dict[str, Any] = {
            "path": cache_dir / f"{name}-{short_hash(key_parts)}.{fmt}",
            "seconds": None,
        }
        seen[name] = record

        def timed() -> Any:
            start = time.perf_counter()
            value = compute()
            record["seconds"] = time.perf_counter() - start
            return value

        return original(name, cache_dir, key_parts, timed, fmt)

    for module in (data, topk, preparation):
        if getattr(module, "cached", None) is original:
            module.cached = watched  # type: ignore[attr-defined]
    return seen


def hand_made_and_cache(
    study: Any, out: Path, lr: float, passes: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """Sections 1 and 3's cache timing, in one process with one loaded teacher: returns
    (hand-made result, cache cost, latency re-measured by shape name)."""
    import torch

    from autodistill.config import SpaceConfig
    from autodistill.distill.student import StudentArch, select_layers, teacher_arch
    from autodistill.search.inputs import inspect_inputs
    from autodistill.search.preparation import prepare_job
    from autodistill.search.sampling import TrialSettings
    from autodistill.search.trial import run_trial
    from autodistill.tasks.causal_lm.data import read_corpus, token_blocks
    from autodistill.tasks.causal_lm.topk import compute_topk

    space = SpaceConfig.model_validate(study.user_attrs["space"])
    inputs, problems = inspect_inputs(space)
    if inputs is None:
        raise SystemExit("the study's space no longer validates: " + "; ".join(problems))
    t = teacher_arch(inputs.teacher_config)
    how = space.student.layer_selection
    arch = StudentArch(t.depth // 2, t.width, t.heads, t.ffn, t.kv_heads)
    settings = TrialSettings(arch, 0.5, 2.0, lr, "teacher-layers", 0.0)
    layers = select_layers(t.depth, arch.depth, how)
    log(f"hand-made: {shape_name(arch)} from teacher layers {layers} ({how}), λ=0.5, T=2, lr {lr:g}")

    cache_dir = out / "cache"
    before = cache_files(cache_dir)
    seen = watch_caches()
    start = time.perf_counter()
    job = prepare_job(space, inputs, cache_dir, log)
    prepare_seconds = time.perf_counter() - start
    recomputed = {k: v for k, v in cache_files(cache_dir).items() if k not in before}
    if recomputed:
        log(
            f"note: prepare_job computed {', '.join(recomputed)} (the demo's cache keys differ from today's code)"
        )

    # Section 3: the teacher's cache at the demo's settings.
    log("cache cost: reading and tokenising the corpus (no cache)")
    start = time.perf_counter()
    blocks = token_blocks(read_corpus(space.dataset), job.tokenizer, space.train.max_length, None)
    tokenise_seconds = time.perf_counter() - start
    train_blocks = job.data.train.blocks
    n, length = train_blocks.input_ids.shape
    topk_file = seen["teacher-topk"]["path"]
    topk_seconds = seen["teacher-topk"]["seconds"]
    how = "computed by `prepare_job` (the cache key differed)"
    if topk_seconds is None:
        log(
            f"cache cost: the teacher's top-{space.distill.top_k} targets on {n} training blocks of {length} tokens"
        )
        start = time.perf_counter()
        compute_topk(job.teacher, train_blocks, space.distill.top_k, space.train.eval_batch_size, job.device)
        topk_seconds = time.perf_counter() - start
        how = "`compute_topk`, timed here"
    log(f"cache cost: tokenising {tokenise_seconds:.1f} s, top-k {topk_seconds:.1f} s")
    cache = {
        # the files the study's training blocks use (the token blocks and top-k targets prepare_job read)
        "files": {
            record["path"].name: record["path"].stat().st_size
            for name, record in seen.items()
            if name in ("lm-blocks", "teacher-topk") and record["path"].is_file()
        },
        "recomputed": recomputed,
        "prepare_job_seconds": prepare_seconds,
        "tokenise_seconds": tokenise_seconds,
        "corpus_blocks": int(blocks.shape[0]),
        "topk_seconds": topk_seconds,
        "topk_how": how,
        "demo_topk_seconds": demo_topk_seconds(study, out, topk_file) if topk_file.name in before else None,
        "train_blocks": int(n),
        "block_tokens": int(length),
        "top_k": space.distill.top_k,
        "torch_threads": torch.get_num_threads(),
        "device": job.device,
    }

    # Section 1: the hand-made student, through the product's trial code.
    log(f"hand-made: training {space.train.steps} steps of {space.train.batch_size} blocks")
    start = time.perf_counter()
    outcome = run_trial(settings, job)
    hand = {
        "recipe": f"DistilGPT2-style {arch.depth}×{arch.width} teacher-layers, λ=0.5, T=2, lr {lr:g}",
        "shape": shape_name(arch),
        "layers": layers,
        "metrics": {k: float(v) for k, v in outcome.metrics.items()},
        "timings": outcome.timings,
        "seconds": time.perf_counter() - start,
        "steps": space.train.steps,
        "teacher_shape": shape_name(t),
    }
    log(f"hand-made: {hand['metrics']} in {hand['seconds']:.0f} s")
    teacher_config = inputs.teacher_config
    del outcome, job

    shapes = {shape_name(t): t, shape_name(arch): arch}
    for trial in study.best_trials:
        a = trial_settings(trial).arch
        shapes[shape_name(a)] = a
    log(f"re-measuring the decode latency of {len(shapes)} shapes together ({passes} interleaved passes)")
    together = latency_together(shapes, teacher_config, space.latency, passes)
    return hand, cache, together


def section_dominance(
    study: Any, hand: dict[str, Any], together: dict[str, float]
) -> tuple[str, dict[str, Any]]:
    front = sorted(study.best_trials, key=lambda t: t.user_attrs["metrics"]["perplexity"])
    own = point(hand["metrics"])
    again = point(hand["metrics"], together[hand["shape"]])
    rows, by_own, by_again = [], [], []
    for trial in front:
        m = trial.user_attrs["metrics"]
        shape = shape_name(trial_settings(trial).arch)
        p_own, p_again = point(m), point(m, together[shape])
        d_own, d_again = dominates(p_own, own), dominates(p_again, again)
        by_own += [trial.number] if d_own else []
        by_again += [trial.number] if d_again else []
        s = trial.user_attrs["settings"]
        rows.append(
            [
                trial.number,
                f"{shape} {s['init']}",
                m["perplexity"],
                m["latency_ms"],
                together[shape],
                m["size_mb"],
                "yes" if d_own else "no",
                "yes" if d_again else "no",
            ]
        )
    hm = hand["metrics"]
    rows.append(
        [
            "hand-made",
            f"{hand['shape']} teacher-layers",
            hm["perplexity"],
            hm["latency_ms"],
            together[hand["shape"]],
            hm["size_mb"],
            "–",
            "–",
        ]
    )
    text = "\n".join(
        [
            "## 1. A hand-made DistilGPT2-style student against the front",
            "",
            f"{hand['recipe']}; teacher layers {hand['layers']}; {hand['steps']} steps (the study's budget); "
            f"{hand['seconds']:.0f} s.",
            "",
            table(
                [
                    "trial",
                    "shape",
                    "perplexity",
                    "latency_ms (run)",
                    "latency_ms (re-measured)",
                    "size_mb",
                    "dominates it (run)",
                    "dominates it (re-measured)",
                ],
                rows,
            ),
            "",
            f"Dominated with the run's own latencies: {'yes, by trial(s) ' + ', '.join(map(str, by_own)) if by_own else 'no'}.",
            f"Dominated with latencies re-measured together: {'yes, by trial(s) ' + ', '.join(map(str, by_again)) if by_again else 'no'}.",
        ]
    )
    return text, {
        "hand_made": {k: hm[k] for k in OBJECTIVES},
        "hand_made_latency_remeasured_ms": together[hand["shape"]],
        "hand_made_dominated_by_own": by_own,
        "hand_made_dominated_by_remeasured": by_again,
    }


def train_full(study: Any, out: Path, steps: int) -> dict[str, Any]:
    """The front student with the lowest validation perplexity at ≤ ¼ of the teacher's latency, through
    ``autodistill train``."""
    reference = study.user_attrs["teacher_reference"]
    fast = [
        t for t in study.best_trials if t.user_attrs["metrics"]["latency_ms"] <= reference["latency_ms"] / 4
    ]
    if not fast:
        return {"trial": None}
    best = min(fast, key=lambda t: t.user_attrs["metrics"]["perplexity"])
    command = [
        sys.executable,
        "-m",
        "autodistill",
        "train",
        str(best.number),
        "--out",
        str(out),
        "--steps",
        str(steps),
    ]
    log(f"full length: {' '.join(command[2:])}")
    logfile = out / "lm-figures-train.log"
    # Each line of its output with the seconds since the start: the log says how long each phase took.
    stamped: list[tuple[float, str]] = []
    start = time.perf_counter()
    with (
        logfile.open("w") as f,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, text=True
        ) as done,
    ):
        assert done.stdout is not None
        for line in done.stdout:
            stamped.append((time.perf_counter() - start, line.rstrip("\n")))
            f.write(f"[{stamped[-1][0]:8.1f} s] {stamped[-1][1]}\n")
            f.flush()
    seconds = time.perf_counter() - start
    text = "\n".join(line for _, line in stamped)
    found = TRAIN_LINE.search(text)
    if done.returncode != 0 or not found:
        log(f"autodistill train failed ({done.returncode}); see {logfile}\n{text[-2000:]}")
        return {"trial": best.number, "failed": f"exit {done.returncode}, see {logfile}"}
    topk = [k for k, (_, line) in enumerate(stamped) if line.startswith("teacher: computing its top-")]
    topk_seconds = (
        stamped[topk[0] + 1][0] - stamped[topk[0]][0] if topk and topk[0] + 1 < len(stamped) else None
    )
    before = study.user_attrs.get(f"test_metrics:{best.number}", {}).get("test_perplexity", float("nan"))
    return {
        "trial": best.number,
        "settings": best.user_attrs["settings"],
        "latency_ms": best.user_attrs["metrics"]["latency_ms"],
        "val_before": float(found.group(2)),
        "val_after": float(found.group(3)),
        "steps": int(found.group(4)),
        "test_before": float(before),
        "test_after": float(found.group(5)),
        "seconds": seconds,
        "topk_seconds": topk_seconds,
        "topk_line": stamped[topk[0]][1] if topk else None,
        "command": " ".join(["autodistill", *command[3:]]),
        "log": str(logfile),
        "output": [
            line
            for line in text.splitlines()
            if line.startswith(("train:", "teacher:", "trial ", "exported", "registered"))
        ],
    }


def section_full(
    study: Any,
    full: dict[str, Any],
    hand: dict[str, Any],
    together: dict[str, float],
    steps: int,
    extra_files: dict[str, float],
) -> str:
    reference = study.user_attrs["teacher_reference"]
    head = "## 2. The best student at ≤ ¼ of the teacher's decode latency, after `autodistill train`"
    if full.get("trial") is None:
        return f"{head}\n\nNo front student has latency_ms ≤ ¼ of the teacher's ({reference['latency_ms']:.2f} ms)."
    if "failed" in full:
        return f"{head}\n\nTrial {full['trial']}: `autodistill train` failed ({full['failed']})."
    s = full["settings"]
    arch = trial_settings(next(t for t in study.best_trials if t.number == full["trial"])).arch
    teacher_shape = hand["teacher_shape"]
    topk_note = f": {full['topk_seconds'] / 60:.1f} min" if full.get("topk_seconds") else ""
    ratio_run = full["latency_ms"] / reference["latency_ms"]
    ratio_again = together[shape_name(arch)] / together[teacher_shape]
    rows = [
        [
            "teacher",
            "–",
            reference["perplexity"],
            reference["test_perplexity"],
            reference["latency_ms"],
            1.0,
            1.0,
        ],
        [
            f"trial {full['trial']}, search's short run ({s['depth']}×{s['width']} {s['init']})",
            str(hand["steps"]),
            full["val_before"],
            full["test_before"],
            full["latency_ms"],
            ratio_run,
            ratio_again,
        ],
        [
            f"trial {full['trial']}, `autodistill train --steps {steps}`",
            str(full["steps"]),
            full["val_after"],
            full["test_after"],
            full["latency_ms"],
            ratio_run,
            ratio_again,
        ],
    ]
    return "\n".join(
        [
            head,
            "",
            f"`{full['command']}`: {full['seconds'] / 60:.1f} min in all (loading, the teacher's top-k targets "
            f"on all training blocks{topk_note}, its reference figures, training, export, registration)"
            + "".join(f"; it wrote `{name}`, {size / 1e9:.3f} GB" for name, size in extra_files.items())
            + ".",
            "",
            table(
                [
                    "model",
                    "steps",
                    "validation perplexity",
                    "test perplexity",
                    "latency_ms (run)",
                    "latency / teacher's (run)",
                    "latency / teacher's (re-measured)",
                ],
                rows,
            ),
            "",
            "What `autodistill train` printed:",
            "",
            "```",
            *full["output"],
            "```",
            "",
            f"Test perplexity after full-length training: {full['test_after']:.2f} against the teacher's "
            f"{reference['test_perplexity']:.2f} ({full['test_after'] / reference['test_perplexity']:.2f}×), "
            f"at {ratio_run:.2f}× the teacher's decode latency ({ratio_again:.2f}× re-measured).",
        ]
    )


def section_cost(study: Any, cache: dict[str, Any], hand: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    phases: dict[str, list[float]] = {}
    for trial in done:
        for k, v in trial.user_attrs.get("timings", {}).items():
            phases.setdefault(k, []).append(float(v))
    wall = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in done
        if t.datetime_complete and t.datetime_start
    ]
    rows = [
        [k, span(v), span([hand["timings"][k]]) if k in hand["timings"] else "–"] for k, v in phases.items()
    ]
    rows.append(["wall (start → complete)", span(wall), f"{hand['seconds']:.1f}"])
    files = cache["files"]
    blocks = sum(v for k, v in files.items() if k.startswith("lm-blocks"))
    topk = sum(v for k, v in files.items() if k.startswith("teacher-topk"))
    demo = cache["demo_topk_seconds"]
    cache_rows = [
        [
            "token blocks (`lm-blocks-*.pt`): read and tokenise the corpus",
            f"{cache['corpus_blocks']:,} blocks of {cache['block_tokens']}",
            f"{blocks / 1e9:.4f}",
            f"{cache['tokenise_seconds']:.1f}",
            "–",
        ],
        [
            f"teacher's top-{cache['top_k']} targets (`teacher-topk-*.pt`)",
            f"{cache['train_blocks']:,} training blocks of {cache['block_tokens']}",
            f"{topk / 1e9:.4f}",
            f"{cache['topk_seconds']:.1f} ({cache['topk_how']})",
            f"≤ {demo:.0f} (search start → file written)" if demo else "–",
        ],
    ]
    text = "\n".join(
        [
            "## 3. Cost of one trial and of the teacher's cache at the demo's settings",
            "",
            f"Seconds per phase over the {len(done)} complete trials (median (min–max)), from each trial's "
            "`timings`; the hand-made student's beside them:",
            "",
            table(["phase", "search trials: s", "hand-made: s"], rows),
            "",
            f"The teacher's cache (GB: the files for the study's blocks in its cache; seconds measured here with "
            f"torch threads {cache['torch_threads']} on the {cache['device']}, and as the demo took them; "
            f"`prepare_job` here: {cache['prepare_job_seconds']:.1f} s):",
            "",
            table(
                ["what", "covers", "GB on disk", "seconds, measured here", "seconds, in the run"], cache_rows
            ),
        ]
    )
    figures = {
        "complete_trials": len(done),
        "trial_wall_s_median": statistics.median(wall) if wall else None,
        "trial_wall_s_min": min(wall) if wall else None,
        "trial_wall_s_max": max(wall) if wall else None,
        "trial_phase_s_median": {k: statistics.median(v) for k, v in phases.items()},
        "cache_lm_blocks_gb": blocks / 1e9,
        "cache_teacher_topk_gb": topk / 1e9,
        "tokenise_s": cache["tokenise_seconds"],
        "teacher_topk_s": cache["topk_seconds"],
        "teacher_topk_s_demo": demo,
        "teacher_topk_blocks": cache["train_blocks"],
    }
    return text, figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "runs" / "shakespeare-lm-demo", help="the demo's study"
    )
    parser.add_argument("--train-steps", type=int, default=300, help="steps for `autodistill train`")
    parser.add_argument("--lr", type=float, default=5e-4, help="the hand-made student's learning rate")
    parser.add_argument("--passes", type=int, default=3, help="interleaved passes of the latency re-measure")
    parser.add_argument("--skip-train", action="store_true", help="leave out section 2 (`autodistill train`)")
    parser.add_argument(
        "--resume", action="store_true", help="reuse sections 1 and 3's measurements from an earlier run"
    )
    args = parser.parse_args()

    from autodistill.store.studies import open_existing

    out = args.out.resolve()
    study = open_existing(str(out), None, None)
    if "teacher_reference" not in study.user_attrs or not study.best_trials:
        raise SystemExit(
            f"--out {out}: the study has no teacher reference or no front yet; let the search finish"
        )
    reference = study.user_attrs["teacher_reference"]

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "autodistill"], capture_output=True, text=True, cwd=ROOT
    )
    code = f"git {git.stdout.strip()}" + (" with uncommitted changes to autodistill/" if dirty.stdout else "")

    # Sections 1 and 3's measurements are kept, so that a run stopped during `autodistill train` can
    # go on with --resume instead of measuring them again.
    saved = out / "lm-figures-measured.json"
    if args.resume and saved.is_file():
        hand, cache, together = (json.loads(saved.read_text())[k] for k in ("hand", "cache", "together"))
        log(f"--resume: sections 1 and 3's measurements from {saved}")
    else:
        hand, cache, together = hand_made_and_cache(study, out, args.lr, args.passes)
        saved.write_text(json.dumps({"hand": hand, "cache": cache, "together": together}, default=str))
    one, dominance = section_dominance(study, hand, together)
    three, cost = section_cost(study, cache, hand)
    teacher_shape = hand["teacher_shape"]
    print(
        f"# Causal LM demo figures: study '{study.study_name}' in {out}\n\n"
        f"Teacher: perplexity {reference['perplexity']:.2f} (test {reference['test_perplexity']:.2f}), "
        f"decode latency {reference['latency_ms']:.2f} ms/token ({together[teacher_shape]:.2f} re-measured), "
        f"{reference['size_mb']:.1f} MB. Code: {code}.\n"
    )
    print(one, three, sep="\n\n", end="\n\n", flush=True)

    files_before = cache_files(out / "cache")
    full = {"trial": None, "skipped": True} if args.skip_train else train_full(study, out, args.train_steps)
    study = open_existing(str(out), None, None)  # test scores and runs the train step may have added
    extra = {k: v for k, v in cache_files(out / "cache").items() if k not in files_before}
    if full.get("skipped"):
        print("## 2. The best student at ≤ ¼ of the teacher's decode latency\n\nSkipped (--skip-train).\n")
    else:
        print(section_full(study, full, hand, together, args.train_steps, extra), end="\n\n")
    summary = {
        "study": study.study_name,
        "code": code,
        "teacher": {k: reference.get(k) for k in ("perplexity", "test_perplexity", "latency_ms", "size_mb")},
        "teacher_latency_remeasured_ms": together[teacher_shape],
        **dominance,
        "full_length": {k: v for k, v in full.items() if k not in ("output", "settings")},
        "full_length_cache_gb": sum(extra.values()) / 1e9,
        **cost,
        "latency_remeasured_ms": together,
    }
    (out / "lm-figures.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
