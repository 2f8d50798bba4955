"""Students worth deploying? The best student under ¼ of the teacher's latency, on test examples.

For a teacher (default: the shared MiniLM SST-2 teacher) and SST-2, as a user would, through the CLI:

1. ``autodistill search search_spaces/small-students.yaml`` (or ``--space``: ``mpnet-students.yaml`` for
   the 12-layer MPNet teacher; 1-3 layers, narrow or with a narrow
   feed-forward, hidden-state and attention-relation losses searched, a transfer set of altered copies
   for full-length training unless ``--augment 0``), with the space's constraint
   ``latency_fraction ≤ 0.25``: each shape is timed in turns with the teacher, and one over ¼ of it is
   pruned before training, so the trials go to students that can be chosen;
2. ``autodistill train --best K --max-latency-fraction 0.25 --train-examples M --epochs E``: the K
   most accurate students within the bound trained on M labelled examples and their transfer set, the
   best on validation registered;
3. the teacher's and the registered student's latencies measured together (``--passes`` interleaved
   passes, medians) and their ratio; the teacher's test accuracy is the study's reference, the student's
   comes from ``train`` (test examples, which nothing was chosen or stopped on);
4. with ``--ablation``: the registered student's recipe trained again, same length and seeds
   (``--ablation-seeds``), with the transfer set off/on and the attention-relation loss off/on, scored on
   the test examples (mean and spread over seeds). It says what each part is worth.

``--quick`` runs the MiniLM case in about 15-20 minutes on 2 cores (a short search, the best two
students trained on 40,000 labelled examples for 1 epoch, no altered copies) and prints, as its last
line, a JSON object with ``teacher_test_accuracy``, ``student_test_accuracy`` and ``latency_ratio``.

    .venv/bin/python benchmarks/distill_quality.py --quick [--out DIR]
    .venv/bin/python benchmarks/distill_quality.py [--teacher DIR] [--space YAML] [--trials N] [--train-examples M]
        [--epochs E] [--workers N] [--ablation] [--ablation-seeds 0 1 2] [--out DIR]
    .venv/bin/python benchmarks/distill_quality.py --quick --out DIR --compare TRIAL [TRIAL ...]
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
SHARED = ROOT.parent / "shared"
SPACE = ROOT / "search_spaces" / "small-students.yaml"  # --space chooses another (mpnet-students.yaml)
# --quick: the teacher labels 40,000 real training examples, each seen once, and no altered copies.
# At the same labelling cost and steps, real examples in place of copies gained 1.6 test points, and
# 40,000 examples once in place of 20,000 twice (the same 1,250 steps) 0.7 more (means of 3 seeds,
# docs/figures.md).
QUICK = {"trials": 14, "steps": 100, "train_examples": 40000, "epochs": 1.0, "best": 2, "augment": 0}
# The full run: every labelled training example once, no copies either (whether copies pay on top
# of all the real text was not measured; at the same labelling cost real text beat them).
FULL = {"trials": 20, "steps": 150, "train_examples": None, "epochs": 1.0, "best": 2, "augment": 0}


def autodistill(args: list[str], log: Path) -> str:
    """Run the ``autodistill`` CLI as a user would; its output goes to ``log`` and is returned."""
    with log.open("a") as sink:
        sink.write(f"$ autodistill {' '.join(args)}\n")
        sink.flush()
        done = subprocess.run(
            [sys.executable, "-m", "autodistill", *args], stdout=subprocess.PIPE, stderr=sink, text=True
        )
        sink.write(done.stdout)
    if done.returncode:
        raise SystemExit(f"autodistill {args[0]} failed (exit {done.returncode}); see {log}")
    return done.stdout


def search(args: argparse.Namespace, out: Path, log: Path) -> None:
    """The space's own bound, ``latency_fraction ≤ 0.25``: each shape is timed in turns with the
    teacher, so a bound set from one teacher timing (22.3 to 32.6 ms in one session) no longer decides
    which shapes may be kept."""
    if (out / "optuna.db").exists() or (out / "optuna.journal").exists():
        print(f"search: reusing {out}", flush=True)
        return
    autodistill(
        [
            "search",
            str(args.space),
            "--teacher",
            args.teacher,
            "--dataset",
            args.dataset,
            "--out",
            str(out),
            "--trials",
            str(args.trials),
            "--seed",
            str(args.seed),
            "--set",
            f"train.steps={args.steps}",
            *(["--set", f"transfer.augment={args.augment}"] if args.augment is not None else []),
            *(["--workers", str(args.workers)] if args.workers > 1 else []),
        ],
        log,
    )


def train_best(args: argparse.Namespace, out: Path, log: Path) -> dict[str, Any]:
    """``train --best``: the registered trial, its shape, validation and test accuracy, steps."""
    bound = space_file(args.space)["search"]["constraints"]["latency_fraction"]["max"]  # the search's own
    flags = ["--epochs", str(args.epochs), "--max-latency-fraction", str(bound)]
    if args.train_examples:
        flags += ["--train-examples", str(args.train_examples)]
    text = autodistill(["train", "--best", str(args.best), "--out", str(out), *flags], log)
    steps = int(re.search(r"trained (\d+) steps each", text).group(1))  # type: ignore[union-attr]
    row = re.search(
        r"^\s*(\d+)\s+depth=(\d+) width=(\d+) ffn=(\d+) (\S+)\s+([\d.]+)\s+([\d.]+) → ([\d.]+)\s+([\d.]+)\s+← registered",
        text,
        re.M,
    )
    assert row, text[-3000:]
    trial, depth, width, ffn, init, _ms, before, after, test = row.groups()
    return {
        "trial": int(trial),
        "shape": f"{depth}×{width}, feed-forward {ffn}, {init}",
        "validation_before": float(before),
        "validation_after": float(after),
        "student_test_accuracy": float(test),
        "steps": steps,
    }


def latency_together(teacher: str, student: Any, passes: int) -> tuple[float, float]:
    """Median batch-1 latency of the teacher and of a model of the student's shape, in one session:
    ``passes`` passes, alternating which goes first."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from autodistill.config.schema import LatencySpec
    from autodistill.distill.student import build_student
    from autodistill.measure.latency import measure_latency

    spec = LatencySpec()
    config = AutoConfig.from_pretrained(teacher)
    models = {
        "teacher": AutoModelForSequenceClassification.from_pretrained(teacher).eval(),
        "student": build_student(config, student, 0, AutoModelForSequenceClassification).eval(),
    }
    seen: dict[str, list[float]] = {"teacher": [], "student": []}
    for k in range(passes):
        for name in ("teacher", "student") if k % 2 == 0 else ("student", "teacher"):
            seen[name].append(measure_latency(models[name], spec).p50_ms)
    return statistics.median(seen["teacher"]), statistics.median(seen["student"])


def train_variant(
    study: Any, settings: Any, length: Any, augment: int, seed: int, cache: Path
) -> dict[str, Any]:
    """One full-length run of ``settings`` (no MLflow, no export), scored on the test examples."""
    from autodistill.deliver.full_training import trial_space, with_steps_for
    from autodistill.search.preparation import prepare_job
    from autodistill.search.test_scores import score_on_test
    from autodistill.search.trial import run_trial

    space, inputs, _ = trial_space(study, settings, length)
    space = space.model_copy(
        update={
            "transfer": space.transfer.model_copy(update={"augment": augment}),
            "train": space.train.model_copy(update={"seed": seed}),
        }
    )
    start = time.perf_counter()
    job = prepare_job(space, inputs, cache, lambda m: None, full_length=True)
    with_steps_for(job, length)
    outcome = run_trial(settings, job)
    return {
        "test": score_on_test(job, outcome.student)["test_accuracy"],
        "steps": job.space.train.steps,
        "examples": len(job.data.train),  # labelled and transfer set
        "minutes": (time.perf_counter() - start) / 60,
    }


def seeded_runs(
    study: Any, settings: Any, length: Any, augment: int, seeds: list[int], cache: Path
) -> dict[str, Any]:
    """``train_variant`` once per seed: steps, the test accuracy's mean and range, minutes per run."""
    runs = [train_variant(study, settings, length, augment, seed, cache) for seed in seeds]
    scores = [r["test"] for r in runs]
    return {
        "steps": runs[0]["steps"],
        "examples": runs[0]["examples"],
        "test accuracy, mean": statistics.mean(scores),
        "min–max": f"{min(scores):.4f}–{max(scores):.4f}",
        "seeds": seeds,
        "minutes per run": statistics.mean(r["minutes"] for r in runs),
    }


def ablation(args: argparse.Namespace, out: Path, trial_number: int) -> list[dict[str, Any]]:
    """The registered trial's recipe at full length, per seed (``train.seed``: initial order and
    dropout), scored on the test examples:

    - the labelled examples alone, and with the transfer set's altered copies (the space file's
      ``transfer.augment`` per text) for the same epochs;
    - the labelled examples alone for as many steps as with the copies, so that a gain of the copies is
      not just more steps; and, when the run used a subset, as many *real* examples as labelled and
      copies together, for the same teacher labelling and steps;
    - the run's own data with the attention-relation loss on (at the trial's weight, or 1).
    """
    from autodistill.deliver.export import study_space
    from autodistill.deliver.full_training import TrainingLength
    from autodistill.search.sampling import TrialSettings
    from autodistill.store.studies import open_existing

    study = open_existing(str(out), None, args.space.stem)
    settings = TrialSettings.from_params(study.trials[trial_number].user_attrs["settings"])
    weight = settings.attention_weight or 1.0
    plain = TrialSettings(**{**vars(settings), "attention_weight": 0.0})
    relations = TrialSettings(**{**vars(settings), "attention_weight": weight})
    run_copies = study_space(study).transfer.augment
    copies = run_copies or int(space_file(args.space)["transfer"]["augment"])
    epochs = TrainingLength(epochs=args.epochs, examples=args.train_examples)
    rows: list[dict[str, Any]] = []

    def row(name: str, attention: str, settings: Any, length: Any, augment: int) -> dict[str, Any]:
        rows.append(
            {
                "transfer set": name,
                "attention loss": attention,
                **seeded_runs(study, settings, length, augment, args.ablation_seeds, out / "cache"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        return rows[-1]

    row("off, same epochs", "off", plain, epochs, 0)
    with_copies = row(f"on ({copies} copies per text)", "off", plain, epochs, copies)
    same_steps = TrainingLength(steps=with_copies["steps"], examples=args.train_examples)
    row("off, same steps", "off", plain, same_steps, 0)
    if args.train_examples:
        real = TrainingLength(epochs=args.epochs, examples=with_copies["examples"])
        row(f"off, {with_copies['examples']} real examples in place of the copies", "off", plain, real, 0)
    row(
        f"the run's ({run_copies} copies per text)",
        f"on (weight {weight:.2f})",
        relations,
        epochs,
        run_copies,
    )
    return rows


def space_file(space: Path) -> dict[str, Any]:
    """The space file as written (its latency bound; its copies, for a run searched without them)."""
    import yaml

    return dict(yaml.safe_load(space.read_text()))


def compare(args: argparse.Namespace, out: Path, trial_numbers: list[int]) -> list[dict[str, Any]]:
    """Trials of a finished search (e.g. a 1-layer and a 2-layer student it found equally accurate in
    their short runs), each trained at full length with its own recipe and the study's transfer set, per
    seed, scored on the test examples: which shape pays once trained to the end."""
    from autodistill.deliver.export import study_space
    from autodistill.deliver.full_training import TrainingLength
    from autodistill.search.sampling import TrialSettings
    from autodistill.store.studies import open_existing

    study = open_existing(str(out), None, args.space.stem)
    augment = study_space(study).transfer.augment
    length = TrainingLength(epochs=args.epochs, examples=args.train_examples)
    rows = []
    for number in trial_numbers:
        settings = TrialSettings.from_params(study.trials[number].user_attrs["settings"])
        arch = settings.arch
        rows.append(
            {
                "trial": number,
                "shape": f"{arch.depth}×{arch.width}, feed-forward {arch.ffn}, {settings.init}",
                "short run": study.trials[number].values[0],
                **seeded_runs(study, settings, length, augment, args.ablation_seeds, out / "cache"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| trial | shape | short run (validation) | steps | test accuracy, mean | min–max | minutes per run |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        print(
            f"| {r['trial']} | {r['shape']} | {r['short run']:.4f} | {r['steps']} | {r['test accuracy, mean']:.4f} "
            f"| {r['min–max']} | {r['minutes per run']:.1f} |"
        )
    return rows


def print_ablation(rows: list[dict[str, Any]]) -> None:
    print("\n| transfer set | attention loss | steps | test accuracy, mean | min–max | minutes per run |")
    print("| --- | --- | ---: | ---: | --- | ---: |")
    for r in rows:
        print(
            f"| {r['transfer set']} | {r['attention loss']} | {r['steps']} | {r['test accuracy, mean']:.4f} "
            f"| {r['min–max']} | {r['minutes per run']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the MiniLM case in about 15-20 minutes")
    parser.add_argument("--teacher", default=str(SHARED / "models" / "minilm-sst2-teacher"))
    parser.add_argument("--dataset", default=str(SHARED / "data" / "sst2"))
    parser.add_argument(
        "--space", type=Path, default=SPACE, help="search space (default small-students.yaml)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "distill-quality")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--steps", type=int, help="steps per trial")
    parser.add_argument("--train-examples", type=int, help="labelled examples for full-length training")
    parser.add_argument("--epochs", type=float)
    parser.add_argument(
        "--augment", type=int, help="altered copies per training text (transfer.augment); default the space's"
    )
    parser.add_argument("--best", type=int, help="students trained at full length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="trials at once in the search (`search --workers N`)",
    )
    parser.add_argument("--passes", type=int, default=5, help="interleaved latency passes")
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument(
        "--ablation-only",
        action="store_true",
        help="only the ablation, of the trial a finished run registered",
    )
    parser.add_argument("--ablation-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--compare",
        type=int,
        nargs="+",
        metavar="TRIAL",
        help="only train these trials of a finished run at full length, per seed, and compare them",
    )
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out.mkdir(parents=True, exist_ok=True)
    out, log = args.out / "search", args.out / "cli.log"
    if args.compare:
        result = json.loads((args.out / "result.json").read_text())
        result["compare"] = compare(args, out, args.compare)
        (args.out / "result.json").write_text(json.dumps(result, indent=2))
        return
    if args.ablation_only:
        result = json.loads((args.out / "result.json").read_text())
        result["ablation"] = ablation(args, out, result["trial"])
        print_ablation(result["ablation"])
        (args.out / "result.json").write_text(json.dumps(result, indent=2))
        return
    started = time.perf_counter()

    search(args, out, log)
    search_minutes = (time.perf_counter() - started) / 60
    print(f"search: {args.trials} trials in {search_minutes:.1f} min", flush=True)
    begin = time.perf_counter()
    best = train_best(args, out, log)
    train_minutes = (time.perf_counter() - begin) / 60
    print(f"train: {best} in {train_minutes:.1f} min", flush=True)

    from autodistill.search.sampling import TrialSettings
    from autodistill.store.studies import open_existing

    study = open_existing(str(out), None, args.space.stem)
    arch = TrialSettings.from_params(study.trials[best["trial"]].user_attrs["settings"]).arch
    teacher_ms, student_ms = latency_together(args.teacher, arch, args.passes)
    teacher_test = float(study.user_attrs["teacher_reference"]["test_accuracy"])
    result = {
        "teacher": args.teacher,
        "teacher_test_accuracy": teacher_test,
        **best,
        "share_of_teacher": best["student_test_accuracy"] / teacher_test,
        "teacher_latency_ms": teacher_ms,
        "student_latency_ms": student_ms,
        "latency_ratio": student_ms / teacher_ms,
        "search_minutes": search_minutes,
        "train_minutes": train_minutes,
        "total_minutes": (time.perf_counter() - started) / 60,
        "settings": {
            k: args.__dict__[k]
            for k in ("trials", "steps", "train_examples", "epochs", "best", "augment", "seed")
        },
    }
    print(
        f"\nteacher {teacher_test:.4f} test accuracy at {teacher_ms:.2f} ms; student {best['shape']} (trial "
        f"{best['trial']}) {best['student_test_accuracy']:.4f} = {result['share_of_teacher']:.1%} of the teacher at "
        f"{student_ms:.2f} ms = {result['latency_ratio']:.3f} of its latency; {best['steps']} steps; "
        f"{result['total_minutes']:.1f} min in all",
        flush=True,
    )
    if args.ablation:
        result["ablation"] = ablation(args, out, best["trial"])
        print_ablation(result["ablation"])
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
