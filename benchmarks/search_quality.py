"""Does autodistill beat what a user would do instead, for the same compute? SST-2, the shared MiniLM teacher.

Five search methods, each run once per seed (``--seeds``, passed as ``--seed``) with the same wall-clock
budget (``--budget-minutes``; a trial running at the deadline is finished, and each method loads the
teacher and data, and autodistill computes its caches, before the clock starts):

- ``autodistill``: ``search_spaces/bert.yaml`` as shipped (TPE, teacher-based init, hidden-state loss,
  cached teacher outputs, early stopping);
- ``random search + early stopping``: the same with ``--set search.sampler=random``;
- ``autodistill, no early stopping``: ``--set search.early_stopping.enabled=false``;
- ``random search, no early stopping``: both;
- ``HF Trainer peer`` (``benchmarks/hf_trainer_peer.py``): what a user would write without autodistill,
  a ``transformers.Trainer`` whose loss runs the teacher on every batch, searched by
  ``Trainer.hyperparameter_search(backend="optuna")`` over the same depth, width, λ, T and learning rate
  with the same steps, batch size, train subset, validation and test examples and measurements.

The runs are interleaved by seed (seed 0: every method, then seed 1, ...; each seed starts one method
later in the list), so that load from other work on a shared machine falls on every method alike.
After the searches, hand-made recipes are trained once with the same per-trial budget (DistilBERT-style
half-depth teacher layers, the same with λ=0, 2×128 / 4×256 random-init students) and the most accurate
front student of the first seed's autodistill search with at most ¼ of the teacher's latency is trained
at full length (``autodistill train``).

Hypervolume: accuracy, latency and size are normalised by the teacher, as
(1 - (accuracy - chance) / (teacher accuracy - chance), latency / teacher latency, size / teacher size),
all minimised, with reference point (1, 1, 1): a student at chance accuracy, or as slow or as large as
the teacher, adds nothing. Optuna computes the hypervolume (WFG algorithm) and dominance. It is reported
three ways per run: with each run's own latencies; with every shape's latency (the teacher's included)
re-measured in one session (3 interleaved passes, median); and on the test examples (each search's own
front, chosen on validation accuracy, scored on the test split, latencies re-measured).

    .venv/bin/python benchmarks/search_quality.py [--budget-minutes 30] [--seeds 0 1 2] [--out DIR]
        [--steps N] [--set KEY=VALUE] [--resume] [--skip-hand-made] [--skip-full-training]
    .venv/bin/python benchmarks/search_quality.py --analyse-only --out DIR   # the tables again
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SPACE = ROOT / "search_spaces" / "bert.yaml"
PEER = ROOT / "benchmarks" / "hf_trainer_peer.py"
OBJECTIVES = ["accuracy", "latency_ms", "size_mb"]
METHODS = {  # row name → folder under --out/seed-N
    "autodistill": "autodistill",
    "random search + early stopping": "random-es",
    "autodistill, no early stopping": "no-early-stopping",
    "random search, no early stopping": "random",
    "HF Trainer peer": "hf-trainer",
}
SEARCH_SETTINGS = {  # autodistill's flags per folder (the peer has its own script)
    "autodistill": [],
    "random-es": ["--set", "search.sampler=random"],
    "no-early-stopping": ["--set", "search.early_stopping.enabled=false"],
    "random": ["--set", "search.sampler=random", "--set", "search.early_stopping.enabled=false"],
}
TEST_SCORES_PREFIX = "test_metrics:"
ENV = dict(os.environ)  # every method's environment (--threads sets the thread counts here)
CHANCE = 1.0 / 2  # SST-2 has two classes


def autodistill(args: list[str], log: Path, check: bool = True) -> str:
    """Run the ``autodistill`` CLI as a user would; its output goes to ``log`` and is returned."""
    return run_logged([sys.executable, "-m", "autodistill", *args], log, check)


def run_logged(command: list[str], log: Path, check: bool = True) -> str:
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    text = log.read_text()
    if done.returncode != 0 and check:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}); see {log}\n{text[-2000:]}")
    if done.returncode != 0:
        print(f"FAILED ({done.returncode}): {' '.join(command)}; see {log}\n{text[-1500:]}", flush=True)
    return text if done.returncode == 0 else ""


def run_search(folder: str, seed: int, budget_s: float, root: Path, args: argparse.Namespace) -> bool:
    """One search of one method and seed, in ``root/seed-N/folder``; False when it failed."""
    seed_dir = root / f"seed-{seed}"
    out, log = seed_dir / folder, seed_dir / f"{folder}.log"
    seed_dir.mkdir(parents=True, exist_ok=True)
    sets = [flag for value in overrides(args) for flag in ("--set", value)]
    common = ["--teacher", args.teacher, "--dataset", args.dataset]
    if folder == "hf-trainer":
        command = [
            sys.executable,
            str(PEER),
            "--out",
            str(out),
            "--budget-seconds",
            str(budget_s),
            "--seed",
            str(seed),
            *common,
            *sets,
        ]
    else:
        # The teacher's caches (tokens, logits, hidden states, reference metrics) are keyed by content
        # and computed before the clock starts: one shared folder saves recomputing them per run.
        out.mkdir(parents=True)
        (out / "cache").symlink_to((root / "cache").resolve(), target_is_directory=True)
        command = [
            sys.executable,
            "-m",
            "autodistill",
            "search",
            str(SPACE),
            *common,
            "--out",
            str(out),
            "--trials",
            "10000",
            "--timeout",
            str(budget_s),
            "--seed",
            str(seed),
            *sets,
            *SEARCH_SETTINGS[folder],
        ]
    start = time.perf_counter()
    ok = bool(run_logged(command, log, check=False))
    print(
        f"seed {seed} {folder}: {'done' if ok else 'FAILED'} in {(time.perf_counter() - start) / 60:.1f} min",
        flush=True,
    )
    return ok


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` values every method gets (``--steps`` among them)."""
    return [*args.set, *([f"train.steps={args.steps}"] if args.steps else [])]


def hand_made(root: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The recipes a user would write by hand, each trained once through the product's own trial code."""
    from autodistill.config import Dist
    from autodistill.config.spacefile import load_space
    from autodistill.distill.student import StudentArch, teacher_arch
    from autodistill.search.inputs import inspect_inputs
    from autodistill.search.preparation import prepare_job
    from autodistill.search.trial import run_trial

    space = load_space(SPACE, overrides(args), teacher=args.teacher, dataset=args.dataset).config
    inputs, problems = inspect_inputs(space)
    assert inputs is not None, problems
    t = teacher_arch(inputs.teacher_config)
    half = StudentArch(depth=t.depth // 2, width=t.width, heads=t.heads, ffn=t.ffn)
    # The teacher's hidden states are cached for the depths these recipes use.
    depths = Dist(type="categorical", choices=sorted({half.depth, 2, 4}))
    space = space.model_copy(update={"student": space.student.model_copy(update={"depth": depths})})
    job = prepare_job(space, inputs, root / "cache", lambda m: print(m, flush=True))
    rows = []
    for name, settings in recipes_for(t).items():
        start = time.perf_counter()
        metrics = run_trial(settings, job).metrics
        rows.append(
            {"recipe": name, **{k: metrics[k] for k in OBJECTIVES}, "seconds": time.perf_counter() - start}
        )
        print(f"hand-made {name}: {rows[-1]}", flush=True)
    return rows


def recipes_for(t: Any) -> dict[str, Any]:
    """The hand-made recipes for a teacher of shape ``t`` (a StudentArch)."""
    from autodistill.distill.student import StudentArch
    from autodistill.search.sampling import TrialSettings

    half = StudentArch(depth=t.depth // 2, width=t.width, heads=t.heads, ffn=t.ffn)
    small, medium = StudentArch(2, 128, 4, 512), StudentArch(4, 256, 8, 1024)
    # Learning rates a user would pick: fine-tuning scale from the teacher, larger from scratch.
    return {
        f"DistilBERT-style {half.depth}×{half.width}": TrialSettings(
            half, 0.5, 2.0, 1e-4, "teacher-layers", 1.0
        ),
        f"{half.depth}×{half.width} teacher-layers, λ=0": TrialSettings(
            half, 0.0, 2.0, 1e-4, "teacher-layers", 0.0
        ),
        "2×128 random, λ=0.5 T=2": TrialSettings(small, 0.5, 2.0, 1e-3),
        "2×128 random, λ=0": TrialSettings(small, 0.0, 2.0, 1e-3),
        "4×256 random, λ=0.5 T=2": TrialSettings(medium, 0.5, 2.0, 5e-4),
        "4×256 random, λ=0": TrialSettings(medium, 0.0, 2.0, 5e-4),
    }


def latency_together(shapes: dict[str, Any], teacher: str, spec: Any, passes: int = 3) -> dict[str, float]:
    """Each shape's latency measured in one session: ``passes`` passes over all shapes, each in another
    order (rotated, every other one reversed), median per shape. Latency depends on the shape, not the
    weights, so random-init models of the same shapes stand in for the trained ones."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from autodistill.distill.student import build_student
    from autodistill.measure.latency import measure_latency

    config = AutoConfig.from_pretrained(teacher)
    models = {
        name: build_student(config, arch, 0, AutoModelForSequenceClassification)
        for name, arch in shapes.items()
    }
    names = list(models)
    seen: dict[str, list[float]] = {name: [] for name in models}
    for k in range(passes):
        order = names[k % len(names) :] + names[: k % len(names)]
        for name in reversed(order) if k % 2 else order:
            seen[name].append(measure_latency(models[name], spec).p50_ms)
    return {name: statistics.median(values) for name, values in seen.items()}


def shape_name(arch: Any) -> str:
    return f"{arch.depth}×{arch.width} ({arch.heads} heads, ffn {arch.ffn})"


def trial_arch(trial: optuna.trial.FrozenTrial) -> Any:
    """The student's shape: autodistill stores its settings, the peer its ``arch``."""
    from autodistill.distill.student import StudentArch
    from autodistill.search.sampling import TrialSettings

    if "arch" in trial.user_attrs:
        return StudentArch(**trial.user_attrs["arch"])
    return TrialSettings.from_params(trial.user_attrs["settings"]).arch


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def points(trials: list[Any], latency: dict[str, float] | None = None) -> np.ndarray:
    """(accuracy, latency, size) per trial; latency from ``latency`` by shape when given."""
    rows = [
        [t.values[0], latency[shape_name(trial_arch(t))] if latency else t.values[1], t.values[2]]
        for t in trials
    ]
    return np.array(rows, dtype=float).reshape(-1, 3)


def normalise(points: np.ndarray, reference: dict[str, float], chance: float) -> np.ndarray:
    """To minimised, teacher-relative coordinates (see the module docstring)."""
    acc = (points[:, 0] - chance) / (reference["accuracy"] - chance)
    return np.stack(
        [1 - acc, points[:, 1] / reference["latency_ms"], points[:, 2] / reference["size_mb"]], axis=1
    )


def hypervolume(points: np.ndarray, reference: dict[str, float], chance: float) -> float:
    from optuna._hypervolume import compute_hypervolume  # Optuna's WFG implementation

    loss = normalise(points, reference, chance)
    inside = loss[(loss < 1.0).all(axis=1)]  # points beyond the reference add nothing
    return float(compute_hypervolume(inside, np.ones(3))) if len(inside) else 0.0


def dominated_by(point: np.ndarray, front: np.ndarray) -> bool:
    from optuna.study import StudyDirection
    from optuna.study._multi_objective import _dominates  # Optuna's own dominance test

    directions = [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE, StudyDirection.MINIMIZE]
    candidate = optuna.trial.create_trial(values=list(point))
    return any(_dominates(optuna.trial.create_trial(values=list(f)), candidate, directions) for f in front)


def test_scores(study: optuna.Study) -> dict[int, float]:
    return {
        int(key.removeprefix(TEST_SCORES_PREFIX)): value["test_accuracy"]
        for key, value in study.user_attrs.items()
        if key.startswith(TEST_SCORES_PREFIX) and "test_accuracy" in value
    }


def train_full(
    study: optuna.Study, out: Path, reference: dict[str, float], root: Path, epochs: float
) -> dict[str, Any]:
    """The most accurate front student with latency ≤ ¼ of the teacher's, trained at full length."""
    fast = [t for t in study.best_trials if t.values[1] <= reference["latency_ms"] / 4]
    if not fast:
        return {"trial": None}
    best = max(fast, key=lambda t: t.values[0])
    text = autodistill(
        ["train", str(best.number), "--out", str(out), "--epochs", str(epochs)], root / "train-full.log"
    )
    found = re.search(r"accuracy ([\d.]+) after the search's short run → ([\d.]+) after (\d+) steps", text)
    assert found, text[-2000:]
    settings = best.user_attrs["settings"]
    return {
        "trial": best.number,
        "shape": f"{settings['depth']}×{settings['width']} {settings['init']}",
        "latency_ms": best.values[1],
        "before": float(found.group(1)),
        "after": float(found.group(2)),
        "steps": int(found.group(3)),
    }


def run_order(seeds: list[int]) -> list[tuple[int, str]]:
    """(seed, folder) in the order run: by seed, each seed starting one method later than the last."""
    folders = list(METHODS.values())
    order = []
    for k, seed in enumerate(seeds):
        shift = k % len(folders)
        order += [(seed, folder) for folder in folders[shift:] + folders[:shift]]
    return order


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="wall-clock budget per search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per method and seed")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "search-quality")
    parser.add_argument("--teacher", default=str(SHARED / "models" / "minilm-sst2-teacher"))
    parser.add_argument("--dataset", default=str(SHARED / "data" / "sst2"))
    parser.add_argument("--steps", type=int, help="train.steps of every trial (e.g. tiny, for a smoke run)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a space override for every method"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads for training in every method (OMP_NUM_THREADS); default: torch's own choice. "
        "On a machine shared with other work, 1 avoids threads that wait on each other",
    )
    parser.add_argument(
        "--epochs", type=float, default=1.0, help="full-length training of the chosen student"
    )
    parser.add_argument("--skip-hand-made", action="store_true")
    parser.add_argument("--skip-full-training", action="store_true")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted --out: finished runs are kept, an unfinished one is started again",
    )
    parser.add_argument(
        "--analyse-only", action="store_true", help="print the tables again from an earlier run's --out"
    )
    args = parser.parse_args()
    if args.analyse_only:
        path = args.out / "summary.json"
        summary = json.loads(path.read_text()) if path.is_file() else {}
        analyse(args.out, args.teacher, summary)
        return
    if args.out.exists() and any(args.out.iterdir()) and not args.resume:
        raise SystemExit(
            f"--out {args.out}: not empty; the benchmark starts from nothing (remove it, pick another, "
            "or pass --resume)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cache").mkdir(exist_ok=True)
    if args.threads:
        import torch

        ENV.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        torch.set_num_threads(args.threads)  # the hand-made recipes train in this process
    progress_path = args.out / "progress.json"
    progress = json.loads(progress_path.read_text()) if progress_path.is_file() else {}
    budget = args.budget_minutes * 60
    summary = progress.get("summary") or {
        "started": f"{time.strftime('%Y-%m-%d %H:%M')}, budget {args.budget_minutes:g} min per search, "
        f"seeds {' '.join(map(str, args.seeds))}" + (f", {args.steps} steps per trial" if args.steps else ""),
        "budget_minutes": args.budget_minutes,
        "seeds": args.seeds,
        "overrides": overrides(args),
        "runs": {},
    }
    for seed, folder in run_order(args.seeds):
        key = f"seed-{seed}/{folder}"
        if summary["runs"].get(key, {}).get("ok"):
            continue
        for stale in (args.out / key, args.out / f"{key}.log"):  # an unfinished run starts again
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        start = time.perf_counter()
        ok = run_search(folder, seed, budget, args.out, args)
        summary["runs"][key] = {"ok": ok, "minutes": (time.perf_counter() - start) / 60}
        progress_path.write_text(json.dumps({"summary": summary}, indent=2))

    if not args.skip_hand_made and "hand_made" not in summary:
        summary["hand_made"] = hand_made(args.out, args)
        progress_path.write_text(json.dumps({"summary": summary}, indent=2))
    first = args.out / f"seed-{args.seeds[0]}" / "autodistill"
    if not args.skip_full_training and "full" not in summary and (first / "optuna.db").is_file():
        ours = load(first)
        summary["full"] = train_full(ours, first, ours.user_attrs["teacher_reference"], args.out, args.epochs)
        progress_path.write_text(json.dumps({"summary": summary}, indent=2))
    analyse(args.out, args.teacher, summary)


def load(folder: Path) -> optuna.Study:
    """The one study in ``folder``'s optuna.db (autodistill's is named after the space, the peer's hf-trainer)."""
    storage = f"sqlite:///{folder / 'optuna.db'}"
    return optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)


def find_studies(root: Path) -> dict[str, dict[str, optuna.Study]]:
    """method → seed → study, for every finished run under ``root``. Runs before seeds existed kept
    their folders at the top (one run per method, seed shown as '-')."""
    seed_dirs = {d.name.removeprefix("seed-"): d for d in sorted(root.glob("seed-*")) if d.is_dir()}
    if not seed_dirs:
        seed_dirs = {"-": root}
    return {
        method: {
            seed: load(directory / folder)
            for seed, directory in seed_dirs.items()
            if (directory / folder / "optuna.db").is_file()
        }
        for method, folder in METHODS.items()
    }


def span(values: list[float], digits: int = 3) -> str:
    """Median and min–max, e.g. '0.604 (0.580–0.621)'."""
    values = [v for v in values if v == v]
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def analyse(root: Path, teacher: str, summary: dict[str, Any]) -> None:
    from transformers import AutoConfig

    from autodistill.config import SpaceConfig
    from autodistill.distill.student import teacher_arch

    studies = find_studies(root)
    with_reference = [
        s for runs in studies.values() for s in runs.values() if "teacher_reference" in s.user_attrs
    ]
    if not with_reference:
        raise SystemExit(f"--out {root}: no finished autodistill search to take the teacher's reference from")
    reference = with_reference[0].user_attrs["teacher_reference"]
    spec = SpaceConfig.model_validate(with_reference[0].user_attrs["space"]).latency
    hand = [
        {k: v for k, v in row.items() if k in ("recipe", *OBJECTIVES, "seconds")}
        for row in summary.get("hand_made", [])
    ]

    # Every shape any run trained, the teacher's and the hand-made ones, re-measured in one session.
    t_arch = teacher_arch(AutoConfig.from_pretrained(teacher))
    recipes = recipes_for(t_arch)
    shapes = {shape_name(t_arch): t_arch}
    for runs in studies.values():
        for study in runs.values():
            shapes |= {shape_name(trial_arch(t)): trial_arch(t) for t in complete_trials(study)}
    shapes |= {
        shape_name(recipes[row["recipe"]].arch): recipes[row["recipe"]].arch
        for row in hand
        if row["recipe"] in recipes
    }
    print(f"re-measuring the latency of {len(shapes)} shapes together (3 interleaved passes)", flush=True)
    together = latency_together(shapes, teacher, spec)
    ref_together = {**reference, "latency_ms": together[shape_name(t_arch)]}
    ref_test = {**ref_together, "accuracy": reference.get("test_accuracy", float("nan"))}

    rows = []
    for method, runs in studies.items():
        for seed, study in runs.items():
            states = pd.Series([t.state.name for t in study.trials], dtype=str).value_counts().to_dict()
            done = complete_trials(study)
            front = study.best_trials
            scores = test_scores(study)
            scored = [t for t in front if t.number in scores]
            test_points = np.array(
                [[scores[t.number], together[shape_name(trial_arch(t))], t.values[2]] for t in scored],
                dtype=float,
            ).reshape(-1, 3)
            best = max(front, key=lambda t: t.values[0]) if front else None
            seconds = [
                (t.datetime_complete - t.datetime_start).total_seconds()
                for t in done
                if t.datetime_complete and t.datetime_start
            ]
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "trials": len(study.trials),
                    "complete": states.get("COMPLETE", 0),
                    "stopped early": states.get("PRUNED", 0),
                    "failed": states.get("FAIL", 0),
                    "front": len(front),
                    "hv": hypervolume(points(done), reference, CHANCE),
                    "hv together": hypervolume(points(done, together), ref_together, CHANCE),
                    "hv test": hypervolume(test_points, ref_test, CHANCE) if len(scored) else float("nan"),
                    "front scored": f"{len(scored)}/{len(front)}",
                    "best accuracy": best.values[0] if best else float("nan"),
                    "its test accuracy": scores.get(best.number, float("nan")) if best else float("nan"),
                    "s per complete trial": statistics.median(seconds) if seconds else float("nan"),
                }
            )
    runs_frame = pd.DataFrame(rows)
    by_method = (
        {m: runs_frame[runs_frame["method"] == m] for m in METHODS if (runs_frame["method"] == m).any()}
        if rows
        else {}
    )
    table = pd.DataFrame(
        [
            {
                "method": m,
                "seeds": len(f),
                "hypervolume": span(list(f["hv"])),
                "hv, latency re-measured": span(list(f["hv together"])),
                "hv, test accuracy": span(list(f["hv test"])),
                "trials": span(list(f["trials"]), 0),
                "complete": span(list(f["complete"]), 0),
                "stopped early": span(list(f["stopped early"]), 0),
                "failed": int(f["failed"].sum()),
                "s/trial": span(list(f["s per complete trial"]), 1),
                "best acc (test)": f"{span(list(f['best accuracy']), 4)} ({span(list(f['its test accuracy']), 4)})",
            }
            for m, f in by_method.items()
        ]
    )

    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 40)
    print(f"\nsearch quality, started {summary.get('started', 'earlier (no summary.json)')}")
    print(
        f"teacher: accuracy {reference['accuracy']:.4f} (test {reference.get('test_accuracy', float('nan')):.4f}), "
        f"latency {reference['latency_ms']:.2f} ms ({ref_together['latency_ms']:.2f} ms re-measured), "
        f"{reference['size_mb']:.1f} MB"
    )
    print("\nper run:")
    print(runs_frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        "\nper method: median (min–max) over seeds; hv = hypervolume, best acc = validation (its test accuracy)"
    )
    print(table.to_string(index=False))
    gains = print_gains(runs_frame) if rows else []

    if hand:
        print_hand_made(hand, recipes, studies.get("autodistill", {}), together, reference)
    full = summary.get("full") or {}
    if full.get("trial") is not None:
        share = full["after"] / reference["accuracy"]
        print(
            f"full length: trial {full['trial']} of the first seed's autodistill search ({full['shape']}, "
            f"{full['latency_ms']:.2f} ms = {full['latency_ms'] / reference['latency_ms']:.2f} of the teacher's "
            f"latency): accuracy {full['before']:.4f} → {full['after']:.4f} after {full['steps']} steps = "
            f"{share:.1%} of the teacher's"
        )
    elif "full" in summary:
        print(
            "full length: no front student of the first seed's autodistill search has ≤ 1/4 of the teacher's latency"
        )
    result = {
        **summary,
        "reference": reference,
        "latency_together_ms": together,
        "per_run": rows,
        "gains": gains,
    }
    (root / "summary.json").write_text(json.dumps(result, indent=2, default=str))


def ratio(frame: pd.DataFrame, a: str, b: str, column: str) -> tuple[float, list[float]]:
    """Median of ``a`` / median of ``b``, and the ratios of the same seeds (paired)."""
    fa, fb = frame[frame["method"] == a], frame[frame["method"] == b]
    if fa.empty or fb.empty:
        return float("nan"), []
    med_b = fb[column].median()
    paired = fa.merge(fb, on="seed", suffixes=("_a", "_b"))
    per_seed = [
        x / y if y else float("inf")
        for x, y in zip(paired[f"{column}_a"], paired[f"{column}_b"], strict=True)
    ]
    return (fa[column].median() / med_b if med_b else float("inf")), per_seed


GAINS = [  # (what the ratio isolates, numerator, denominator)
    ("early stopping, with TPE", "autodistill", "autodistill, no early stopping"),
    (
        "early stopping, with random sampling",
        "random search + early stopping",
        "random search, no early stopping",
    ),
    ("sampler (TPE vs random), with early stopping", "autodistill", "random search + early stopping"),
    (
        "sampler (TPE vs random), without early stopping",
        "autodistill, no early stopping",
        "random search, no early stopping",
    ),
    (
        "autodistill's trials vs the HF Trainer peer's, no early stopping (cached teacher outputs, teacher-based "
        "init incl. weight-select, hidden-state loss, init searched; TPE settings)",
        "autodistill, no early stopping",
        "HF Trainer peer",
    ),
    ("everything: autodistill vs the HF Trainer peer", "autodistill", "HF Trainer peer"),
]


def print_gains(frame: pd.DataFrame) -> list[dict[str, Any]]:
    print(
        "\nwhat each gain comes from: hypervolume ratio of the medians [per-seed ratios, same seed paired], "
        "with own latencies | re-measured together | test accuracy"
    )
    out = []
    for what, a, b in GAINS:
        cells = []
        entry: dict[str, Any] = {"what": what, "numerator": a, "denominator": b}
        for column in ("hv", "hv together", "hv test"):
            med, per_seed = ratio(frame, a, b, column)
            entry[column] = {"ratio_of_medians": med, "per_seed": per_seed}
            seeds = f" [{min(per_seed):.2f}–{max(per_seed):.2f}]" if len(per_seed) > 1 else ""
            cells.append(f"{med:.2f}×{seeds}" if med != float("inf") else "– (denominator 0)")
        out.append(entry)
        print(f"- {what}:\n    {a} / {b} = {' | '.join(cells)}")
    print("trials completed in the same budget (median over seeds) and median seconds per complete trial:")
    for method in METHODS:
        f = frame[frame["method"] == method]
        if not f.empty:
            print(
                f"    {method}: {f['complete'].median():g} complete of {f['trials'].median():g} "
                f"({f['stopped early'].median():g} stopped early), {f['s per complete trial'].median():.1f} s per complete trial"
            )
    ours = frame[frame["method"] == "autodistill, no early stopping"]["s per complete trial"]
    peer = frame[frame["method"] == "HF Trainer peer"]["s per complete trial"]
    if not ours.empty and not peer.empty and ours.median():
        print(
            "    throughput, autodistill without early stopping vs the peer (cached teacher outputs against a "
            f"teacher run per batch): {peer.median() / ours.median():.2f}× "
            "faster per complete trial (shape mixes differ: a rough figure)"
        )
    target, _ = ratio(frame, "autodistill", "random search + early stopping", "hv together")
    print(
        f"target ≥ 1.15: autodistill / random search + early stopping = {target:.2f}× (latencies re-measured)"
    )
    return out


def print_hand_made(
    hand: list[dict[str, Any]],
    recipes: dict[str, Any],
    ours: dict[str, optuna.Study],
    together: dict[str, float],
    reference: dict[str, float],
) -> None:
    """Each hand-made point: how many seeds' autodistill fronts dominate it, with each run's own latencies
    and with front and hand-made latencies re-measured together."""
    fronts = {seed: study.best_trials for seed, study in ours.items()}
    own = {seed: points(front) for seed, front in fronts.items()}
    remeasured = {seed: points(front, together) for seed, front in fronts.items()}

    def count(point: list[float], fronts: dict[str, np.ndarray]) -> str:
        return f"{sum(dominated_by(np.array(point), f) for f in fronts.values())}/{len(fronts)}"

    frame = pd.DataFrame(hand)
    frame["dominated (own latencies)"] = [
        count([r["accuracy"], r["latency_ms"], r["size_mb"]], own) for r in hand
    ]
    frame["dominated (re-measured)"] = [
        count([r["accuracy"], together[shape_name(recipes[r["recipe"]].arch)], r["size_mb"]], remeasured)
        if r["recipe"] in recipes
        else "–"
        for r in hand
    ]
    frame["hypervolume alone"] = [
        hypervolume(np.array([[r["accuracy"], r["latency_ms"], r["size_mb"]]]), reference, CHANCE)
        for r in hand
    ]
    print("\nhand-made recipes (same per-trial budget), dominated by how many seeds' autodistill fronts:")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
