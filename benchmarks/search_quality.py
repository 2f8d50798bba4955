"""Does autodistill beat what a user would do by hand, for the same compute? SST-2, the shared MiniLM teacher.

Runs, one after another on the same machine, each search with the same wall-clock budget
(``--budget-minutes``, passed to ``autodistill search --timeout``; a trial running at the deadline is
finished, and the teacher's caches are computed before the clock starts):

- ``autodistill``: ``search_spaces/bert.yaml`` as shipped (TPE, teacher-based init, hidden-state loss,
  early stopping);
- ``autodistill, no early stopping``: the same with ``search.early_stopping.enabled=false``;
- ``random search``: the same space and trial recipe with Optuna's RandomSampler and no early stopping;
- hand-made recipes with the same per-trial budget (``train.steps`` of the space): DistilBERT-style
  (half the teacher's layers, teacher-layer init, λ=0.5, T=2, cosine hidden loss), the same
  architectures with λ=0 (no distillation), and 2×128 / 4×256 random-init students with λ=0.5, T=2.

Then prints each front's hypervolume, whether autodistill's front dominates every hand-made point, and
trains (``autodistill train``, full length) the most accurate front student with at most ¼ of the
teacher's latency, reporting its accuracy as a percentage of the teacher's.

Hypervolume: accuracy, latency and size are normalised by the teacher, as
(1 - (accuracy - chance) / (teacher accuracy - chance), latency / teacher latency, size / teacher size),
all minimised, with reference point (1, 1, 1): a student at chance accuracy, or as slow or as large as
the teacher, adds nothing. Optuna computes the hypervolume (WFG algorithm) and dominance.

    .venv/bin/python benchmarks/search_quality.py [--budget-minutes 30] [--out runs/search-quality]
"""

from __future__ import annotations

import argparse
import json
import re
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
OBJECTIVES = ["accuracy", "latency_ms", "size_mb"]
SEARCHES = {  # row name → folder under --out
    "autodistill": "autodistill",
    "autodistill, no early stopping": "no-early-stopping",
    "random search": "random",
}
SEARCH_SETTINGS = {
    "autodistill": [],
    "no-early-stopping": ["--set", "search.early_stopping.enabled=false"],
    "random": ["--set", "search.sampler=random", "--set", "search.early_stopping.enabled=false"],
}


def autodistill(args: list[str], log: Path) -> str:
    """Run the ``autodistill`` CLI as a user would; its output goes to ``log`` and is returned."""
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "autodistill", *args], stdout=out, stderr=subprocess.STDOUT
        )
    text = log.read_text()
    if done.returncode != 0:
        raise SystemExit(
            f"autodistill {' '.join(args)} failed ({done.returncode}); see {log}\n{text[-2000:]}"
        )
    return text


def run_search(name: str, sets: list[str], budget_s: float, root: Path, common: list[str]) -> optuna.Study:
    out = root / name
    start = time.perf_counter()
    autodistill(
        [
            "search",
            str(SPACE),
            *common,
            "--out",
            str(out),
            "--trials",
            "10000",
            "--timeout",
            str(budget_s),
            *sets,
        ],
        root / f"{name}.log",
    )
    print(f"{name}: done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return optuna.load_study(study_name="bert", storage=f"sqlite:///{out / 'optuna.db'}")


def hand_made(root: Path, teacher: str, dataset: str) -> list[dict[str, Any]]:
    """The recipes a user would write by hand, each trained once through the product's own trial code."""
    from autodistill.config import Dist
    from autodistill.config.spacefile import load_space
    from autodistill.distill.student import StudentArch, teacher_arch
    from autodistill.search.inputs import inspect_inputs
    from autodistill.search.preparation import prepare_job
    from autodistill.search.trial import run_trial

    space = load_space(SPACE, [], teacher=teacher, dataset=dataset).config
    inputs, problems = inspect_inputs(space)
    assert inputs is not None, problems
    t = teacher_arch(inputs.teacher_config)
    half = StudentArch(depth=t.depth // 2, width=t.width, heads=t.heads, ffn=t.ffn)
    # The teacher's hidden states are cached for the depths these recipes use.
    depths = Dist(type="categorical", choices=sorted({half.depth, 2, 4}))
    space = space.model_copy(update={"student": space.student.model_copy(update={"depth": depths})})
    job = prepare_job(space, inputs, root / "hand-made-cache", lambda m: print(m, flush=True))
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
    import statistics

    from transformers import AutoConfig, AutoModelForSequenceClassification

    from autodistill.distill.student import build_student
    from autodistill.measure.latency import measure_latency

    config = AutoConfig.from_pretrained(teacher)
    models = {
        name: build_student(config, arch, 0, AutoModelForSequenceClassification)
        for name, arch in shapes.items()
    }
    names, seen = list(models), {name: [] for name in models}
    for k in range(passes):
        order = names[k % len(names) :] + names[: k % len(names)]
        for name in reversed(order) if k % 2 else order:
            seen[name].append(measure_latency(models[name], spec).p50_ms)
    return {name: statistics.median(values) for name, values in seen.items()}


def dominated_together(ours: optuna.Study, hand: list[dict[str, Any]], teacher: str) -> list[bool]:
    """Dominance with every compared latency (front students and hand-made ones) re-measured together,
    so that two students of one shape are not told apart by run-to-run noise."""
    from transformers import AutoConfig

    from autodistill.config import SpaceConfig
    from autodistill.distill.student import teacher_arch
    from autodistill.search.sampling import TrialSettings

    recipes = recipes_for(teacher_arch(AutoConfig.from_pretrained(teacher)))
    front = {f"trial {t.number}": t for t in ours.best_trials}
    shapes = {name: TrialSettings.from_params(t.user_attrs["settings"]).arch for name, t in front.items()}
    shapes |= {row["recipe"]: recipes[row["recipe"]].arch for row in hand}
    spec = SpaceConfig.model_validate(ours.user_attrs["space"]).latency
    latency = latency_together(shapes, teacher, spec)
    front_points = np.array([[t.values[0], latency[name], t.values[2]] for name, t in front.items()])
    return [
        dominated_by(np.array([row["accuracy"], latency[row["recipe"]], row["size_mb"]]), front_points)
        for row in hand
    ]


def complete_points(study: optuna.Study) -> np.ndarray:
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return np.array([t.values for t in trials], dtype=float).reshape(-1, 3)


def front_points(study: optuna.Study) -> np.ndarray:
    return np.array([t.values for t in study.best_trials], dtype=float).reshape(-1, 3)


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="wall-clock budget per search")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "search-quality")
    parser.add_argument("--teacher", default=str(SHARED / "models" / "minilm-sst2-teacher"))
    parser.add_argument("--dataset", default=str(SHARED / "data" / "sst2"))
    parser.add_argument(
        "--epochs", type=float, default=1.0, help="full-length training of the chosen student"
    )
    parser.add_argument("--skip-full-training", action="store_true")
    parser.add_argument(
        "--analyse-only", action="store_true", help="print the tables again from an earlier run's --out"
    )
    args = parser.parse_args()
    if args.analyse_only:
        summary = json.loads((args.out / "summary.json").read_text())
        studies = {
            name: optuna.load_study(study_name="bert", storage=f"sqlite:///{args.out / folder / 'optuna.db'}")
            for name, folder in SEARCHES.items()
        }
        analyse(args, studies, summary["hand_made"], summary["full"], summary.get("started", "earlier"))
        return
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(
            f"--out {args.out}: not empty; the benchmark starts from nothing (remove it or pick another)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    common = ["--teacher", args.teacher, "--dataset", args.dataset]
    budget = args.budget_minutes * 60
    started = f"{time.strftime('%Y-%m-%d %H:%M')}, budget {args.budget_minutes:g} min per search"

    studies = {
        name: run_search(folder, SEARCH_SETTINGS[folder], budget, args.out, common)
        for name, folder in SEARCHES.items()
    }
    hand = hand_made(args.out, args.teacher, args.dataset)
    ours = studies["autodistill"]
    reference = ours.user_attrs["teacher_reference"]
    full = (
        {}
        if args.skip_full_training
        else train_full(ours, args.out / "autodistill", reference, args.out, args.epochs)
    )
    analyse(args, studies, hand, full, started)


def analyse(
    args: argparse.Namespace,
    studies: dict[str, optuna.Study],
    hand: list[dict[str, Any]],
    full: dict[str, Any],
    started: str,
) -> None:
    ours = studies["autodistill"]
    hand = [{k: v for k, v in row.items() if k in ("recipe", *OBJECTIVES, "seconds")} for row in hand]
    reference = ours.user_attrs["teacher_reference"]
    chance = 1.0 / 2  # SST-2 has two classes
    front = front_points(ours)
    rows = []
    for name, study in studies.items():
        states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
        best = front_points(study)
        rows.append(
            {
                "method": name,
                "trials": len(study.trials),
                "complete": states.get("COMPLETE", 0),
                "stopped early": states.get("PRUNED", 0),
                "front": len(best),
                "hypervolume": hypervolume(complete_points(study), reference, chance),
                "best accuracy": best[:, 0].max() if len(best) else float("nan"),
                "fastest ms": best[:, 1].min() if len(best) else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    hand_frame = pd.DataFrame(hand)
    hand_frame["dominated by autodistill"] = [
        dominated_by(p, front) for p in hand_frame[OBJECTIVES].to_numpy()
    ]
    hand_frame["dominated, latency measured together"] = dominated_together(ours, hand, args.teacher)
    hand_frame["hypervolume alone"] = [
        hypervolume(p[None, :], reference, chance) for p in hand_frame[OBJECTIVES].to_numpy()
    ]

    ratio = (
        table.loc[0, "hypervolume"] / table.loc[2, "hypervolume"]
        if table.loc[2, "hypervolume"]
        else float("inf")
    )
    pd.set_option("display.width", 200)
    print(f"\nsearch quality, started {started}")
    print(
        f"teacher: accuracy {reference['accuracy']:.4f}, latency {reference['latency_ms']:.2f} ms, "
        f"{reference['size_mb']:.1f} MB"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(hand_frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"hypervolume autodistill / random search: {ratio:.2f}× (target ≥ 1.15)")
    print(
        f"every hand-made point dominated: {bool(hand_frame['dominated by autodistill'].all())} with the "
        "latencies of their own runs; "
        f"{bool(hand_frame['dominated, latency measured together'].all())} with front and hand-made "
        "latencies re-measured together (3 interleaved passes, medians)"
    )
    if full.get("trial") is not None:
        share = full["after"] / reference["accuracy"]
        print(
            f"full length: trial {full['trial']} ({full['shape']}, {full['latency_ms']:.2f} ms = "
            f"{full['latency_ms'] / reference['latency_ms']:.2f} of the teacher's latency): accuracy "
            f"{full['before']:.4f} → {full['after']:.4f} after {full['steps']} steps = {share:.1%} of the teacher's"
        )
    elif not args.skip_full_training:
        print("no front student has ≤ 1/4 of the teacher's latency")
    summary = {"started": started, "table": rows, "hand_made": hand, "full": full, "reference": reference}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
