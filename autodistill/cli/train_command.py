"""`autodistill train`: one named trial at full length (``TRIAL``), or the best of the front's students
under a latency bound (``--best N``), exported and registered in MLflow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill.cli.common import EXIT_INTERRUPTED, fail
from autodistill.cli.study_commands import destination_problem, open_study, study_locator
from autodistill.store.locations import check_tracking
from autodistill.util.errors import first_line
from autodistill.util.files import writable


def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="distil a chosen trial's student again at full length, export and register it",
        description="Train TRIAL's recipe (architecture, init seed, λ, T, learning rate) again at full length on "
        "all training examples, log it under the study in MLflow, export it, and register it in the MLflow "
        "Model Registry. Prints the quality before and after. With --best N instead of TRIAL: train the N front "
        "students under a latency bound with the best validation quality, and register the one best on "
        "validation after training (test scores are reported, not chosen on).",
    )
    train.add_argument(
        "trial", type=int, nargs="?", metavar="TRIAL", help="trial number, from pareto.csv or the report"
    )
    train.add_argument(
        "--best",
        type=int,
        metavar="N",
        help="train the N most accurate students under a latency bound (any trial within the constraints)",
    )
    bound = train.add_mutually_exclusive_group()
    bound.add_argument("--max-latency-ms", type=float, metavar="X", help="with --best: at most X ms")
    bound.add_argument(
        "--max-latency-fraction",
        type=float,
        metavar="F",
        help="with --best: at most F times the teacher's latency (each trial's latency_fraction when the "
        "search timed shapes beside the teacher, else the teacher's latency as the study measured it)",
    )
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimisation steps")
    length.add_argument(
        "--epochs", type=float, help="passes over all training examples, transfer set included (default 1)"
    )
    train.add_argument(
        "--train-examples",
        type=int,
        metavar="N",
        help="labelled examples to train on, a seeded subset (default all); the transfer set copies these",
    )
    train.add_argument("--to", type=Path, help="export directory (default: OUT/exports/trial-N-full)")
    train.add_argument("--model-name", help="registered model name (default: STUDY-student)")
    train.add_argument(
        "--cache-dir",
        help="directory for the teacher's targets (default: the one the search used, else OUT/cache)",
    )
    study_locator(train)


def bound_flag(args: argparse.Namespace) -> tuple[str, float] | None:
    if args.max_latency_ms is not None:
        return "--max-latency-ms", args.max_latency_ms
    if args.max_latency_fraction is not None:
        return "--max-latency-fraction", args.max_latency_fraction
    return None


def flag_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags alone (before the study is opened), or None."""
    bound = bound_flag(args)
    checks = [
        (args.trial is not None and args.best is not None, "give TRIAL or --best N, not both"),
        (
            args.trial is None and args.best is None,
            "give TRIAL (one trial) or --best N (the best N front students under a latency bound)",
        ),
        (args.best is not None and args.best < 1, f"--best {args.best}: must be at least 1"),
        (
            args.best is not None and bound is None,
            "--best needs a latency bound: --max-latency-ms X or --max-latency-fraction F",
        ),
        (args.best is None and bound is not None, f"{bound and bound[0]}: only with --best N"),
        (bound is not None and bound[1] <= 0, f"{bound and ' '.join(map(str, bound))}: must be positive"),
    ]
    checks += [
        (value is not None and value <= 0, f"{flag} {value}: must be positive")
        for flag, value in (
            ("--steps", args.steps),
            ("--epochs", args.epochs),
            ("--train-examples", args.train_examples),
        )
    ]
    return next((message for wrong, message in checks if wrong), None)


def training_length(args: argparse.Namespace) -> Any:
    from autodistill.deliver.full_training import TrainingLength

    return TrainingLength(steps=args.steps, epochs=args.epochs, examples=args.train_examples)


def choose_trials(study: Any, args: argparse.Namespace) -> list[Any]:
    """``--best N``'s candidates, best validation quality first.

    Raises:
        ChoiceError: no student under the bound, or no teacher latency for a fraction.
    """
    from optuna.trial import TrialState

    from autodistill.deliver.choosing import feasible, latency_bound, select_candidates
    from autodistill.report.pareto import quality_metric
    from autodistill.store.studies import teacher_reference

    metric, direction = quality_metric(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    students = [t for t in complete if feasible(t)]
    machines = {m for t in students if (m := latency_machine(t))}
    # The teacher timed on the students' machine: one machine's time over another's means nothing.
    teacher_ms = teacher_reference(study, machines).get("latency_ms")
    beside = bool(students) and all("latency_fraction" in t.user_attrs["metrics"] for t in students)
    bound = latency_bound(args.max_latency_ms, args.max_latency_fraction, teacher_ms, beside, machines)
    chosen = select_candidates(students, args.best, bound, metric, direction)
    if len(chosen) < args.best:
        print(f"--best {args.best}: only {len(chosen)} student(s) within {bound.flag}; training those")
    return chosen


def latency_machine(trial: Any) -> str | None:
    """The machine that timed ``trial``'s latency (None for trials from before latencies named it)."""
    return (trial.user_attrs.get("latency_measured_with") or {}).get("machine")


def setup_problems(
    destinations: list[Path], uri: str, name: str, cache_dir: str | None, saved_in: Path | None = None
) -> list[str]:
    """Every reason the results could not be written, found before any compute. ``saved_in``: where
    ``--best`` saves its candidates."""
    problems = [p for p in (*map(destination_problem, destinations), check_tracking(uri)) if p]
    if saved_in and not writable(saved_in):
        problems.append(
            f"{saved_in}: cannot write there (train --best saves each candidate there, to resume); "
            "give --out a writable study directory"
        )
    if cache_dir and not writable(Path(cache_dir)):
        problems.append(f"--cache-dir {cache_dir}: cannot write there; choose a writable directory")
    if any(q in name for q in "'\"\\"):
        problems.append(
            f"--model-name {name}: quotes and backslashes are not allowed in a registered model name"
        )
    return problems


def cmd_train(args: argparse.Namespace) -> int:
    from autodistill.deliver.choosing import ChoiceError
    from autodistill.store.studies import StudyError, completed_trial, study_dir, tracking_uri

    problem = flag_problem(args)
    if problem:
        return fail([problem])
    try:
        study = open_study(args)
        uri = tracking_uri(study, args.tracking_uri, args.out)
        trials = [completed_trial(study, args.trial)] if args.best is None else choose_trials(study, args)
    except (StudyError, ChoiceError) as exc:
        return fail([str(exc)])

    def destination(number: int) -> Path:
        return Path(args.to or study_dir(study, args.out) / "exports" / f"trial-{number}-full")

    name = args.model_name or f"{study.study_name}-student"
    targets = [destination(t.number) for t in trials] if args.to is None else [args.to]
    from autodistill.deliver.full_training import candidates_dir

    saved_in = None if args.best is None else candidates_dir(study, args.out)
    problems = setup_problems(targets, uri, name, args.cache_dir, saved_in)
    if problems:
        return fail(problems)
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    if saved_in is None:
        return train_one(study, trials[0], args, destination(trials[0].number), name, uri, cache_dir)
    return train_best(study, trials, args, destination, name, uri, cache_dir, saved_in)


def log(message: str) -> None:
    print(message, flush=True)


def train_one(
    study: Any, trial: Any, args: argparse.Namespace, to: Path, name: str, uri: str, cache_dir: Path | None
) -> int:
    from tqdm.auto import tqdm

    from autodistill.deliver.full_training import train_full_length

    with tqdm(desc=f"trial {trial.number} full length", unit="step", disable=None) as bar:
        try:
            result = train_full_length(
                study,
                trial,
                training_length(args),
                to,
                name,
                uri,
                cache_dir,
                log,
                lambda s, loss: bar.update(1),
            )
        # a moved teacher or dataset, a registry error, ...: one line, not a traceback
        except (OSError, RuntimeError, ValueError) as exc:
            return fail([f"train {trial.number}: {first_line(exc)}"])
    print(
        f"trial {trial.number}: {result.metric} {result.before:.4f} after the search's short run → {result.after:.4f} "
        f"after {result.steps} steps (validation); test {result.metric} {result.test_after:.4f}\nexported to {result.export['path']}\n"
        f"registered as '{result.model_name}' version {result.model_version} (MLflow run {result.run_id})"
    )
    return 0


def train_best(
    study: Any,
    trials: list[Any],
    args: argparse.Namespace,
    destination: Callable[[int], Path],
    name: str,
    uri: str,
    cache_dir: Path | None,
    saved_in: Path,
) -> int:
    from tqdm.auto import tqdm

    from autodistill.deliver import full_training

    numbers = ", ".join(str(t.number) for t in trials)
    with tqdm(desc=f"trials {numbers} full length", unit="step", disable=None) as bar:
        try:
            result = full_training.train_best(
                study,
                trials,
                training_length(args),
                destination,
                name,
                uri,
                cache_dir,
                log,
                lambda s, loss: bar.update(1),
                saved_in,
            )
        except KeyboardInterrupt:
            print(
                f"\ninterrupted: the candidates trained so far are saved in {saved_in}; "
                "rerun the same command to resume at the next one",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        except (OSError, RuntimeError, ValueError) as exc:
            return fail([f"train --best {args.best}: {first_line(exc)}"])
    print(candidate_table(result))
    best = result.candidates[result.chosen]
    print(
        f"registered trial {best.trial.number} as '{result.model_name}' version {result.model_version} "
        f"(MLflow run {best.run_id}): the best validation {best.metric} after full-length training "
        f"({best.after:.4f}, {'higher' if result.direction == 'maximize' else 'lower'} is better). Test scores "
        f"are reported, not chosen on, so its test {best.metric} is an honest estimate."
        + (
            " The other runs are kept, tagged autodistill.choice=candidate."
            if len(result.candidates) > 1
            else ""
        )
        + f"\nexported to {result.export['path']}"
    )
    for line in close_calls(result):
        print(line)
    return 0


def close_calls(result: Any) -> list[str]:
    """A line for each candidate whose validation accuracy is within one standard error of the
    registered one's: a choice the validation examples could not make, said rather than hidden."""
    from autodistill.deliver.choosing import sampling_error, too_close_to_call

    best = result.candidates[result.chosen]
    if best.metric != "accuracy":  # a proportion of examples; perplexity has no such simple error
        return []
    error = sampling_error(best.after, best.validation_examples)
    return [
        f"note: trial {c.trial.number}'s validation accuracy ({c.after:.4f}) is within one standard error "
        f"(±{error:.4f} on {best.validation_examples} examples) of the registered one's: these examples "
        "cannot tell the two apart; a larger validation split (dataset.validation_split) would"
        for i, c in enumerate(result.candidates)
        if i != result.chosen and too_close_to_call(best.after, c.after, best.validation_examples)
    ]


def candidate_table(result: Any) -> str:
    """One row per candidate: trial, shape, latency, validation before → after, test after."""
    metric = result.candidates[0].metric
    steps = result.candidates[0].space.train.steps
    header = f"{'trial':>5}  {'shape':<38} {'p50 ms':>8}  {'validation ' + metric:<24} {'test ' + metric:>16}"
    rows = [
        f"candidates, trained {steps} steps each (validation: after the search's short run → after):",
        header,
    ]
    for i, c in enumerate(result.candidates):
        s = c.settings
        shape = f"depth={s.arch.depth} width={s.arch.width} ffn={s.arch.ffn} {s.init}"
        latency = float(c.trial.user_attrs["metrics"]["latency_ms"])
        mark = "  ← registered" if i == result.chosen else ""
        validation = f"{c.before:.4f} → {c.after:.4f}"
        rows.append(
            f"{c.trial.number:>5}  {shape:<38} {latency:>8.3f}  {validation:<24} {c.test_after:>16.4f}{mark}"
        )
    return "\n".join(rows)
