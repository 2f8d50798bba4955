"""Command line: ``autodistill search`` and ``autodistill validate``.

Heavy libraries (torch, transformers, mlflow, optuna) are imported only after the arguments and the
space file are checked, so ``--help`` and most mistakes answer at once. Every mistake in the input
ends with one line per problem, exit code 2, no traceback, and nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from autodistill import __version__

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _add_study_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", type=Path, help="search-space YAML file, e.g. search_spaces/bert.yaml")
    p.add_argument("--teacher", help="teacher: a save_pretrained directory or a hub id (wins over the YAML)")
    p.add_argument(
        "--dataset",
        help="dataset: a hub id, a local directory, or a csv/tsv/json/jsonl/parquet file (wins over the YAML)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any value of the YAML by its dotted key, e.g. --set train.steps=20; repeatable",
    )
    p.add_argument(
        "--out",
        help="directory that holds the study: optuna.db, mlflow.db, pareto.csv, caches "
        "(default: autodistill-runs/STUDY)",
    )
    p.add_argument(
        "--storage", help="Optuna storage URL (default: sqlite:///OUT/optuna.db), e.g. postgresql://..."
    )
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite:///OUT/mlflow.db), or a server URL"
    )
    p.add_argument(
        "--study", help="study name, also the MLflow experiment name (default: the space file's name)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autodistill",
        description="Find the best small student to distil from a Hugging Face classifier: "
        "a multi-objective Optuna search over student depth/width and distillation λ, T, "
        "tracked in MLflow, ending in the Pareto front of accuracy, latency and size.",
    )
    parser.add_argument("--version", action="version", version=f"autodistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = sub.add_parser(
        "search",
        help="run or resume a distillation search",
        description="Run a distillation search, or resume it: rerunning the same command continues the "
        "same study and keeps every finished trial.",
    )
    _add_study_flags(search)
    search.add_argument(
        "--trials",
        type=int,
        default=20,
        help="total number of finished trials the study should hold (default 20). Counted in total, not in "
        "addition: a resumed study runs only the missing ones; failed trials count as finished",
    )
    search.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    search.add_argument(
        "--seed", type=int, help="seeds the sampler and training (default: train.seed of the YAML)"
    )

    validate = sub.add_parser(
        "validate",
        help="check a space, teacher and dataset without training",
        description="Check the space file, the teacher and the dataset without training; print every problem "
        "at once; exit 0 when clean, 2 otherwise.",
    )
    _add_study_flags(validate)
    return parser


def _fail(problems: list[str]) -> int:
    for problem in problems:
        print(f"autodistill: error: {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _quiet_libraries() -> None:
    """Our own progress lines replace the libraries' per-step logs and progress bars."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import datasets
    import mlflow  # noqa: F401  (configures its loggers on import; we lower them after)
    import optuna
    import transformers

    for name in ("mlflow", "alembic", "datasets", "huggingface_hub", "optuna"):
        logging.getLogger(name).setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.disable_progress_bar()


def _writable(directory: Path) -> bool:
    """Whether ``directory`` exists writable, or could be created: checked without creating anything."""
    import tempfile

    for parent in [directory.resolve(), *directory.resolve().parents]:
        if parent.exists():
            if not parent.is_dir():
                return False
            try:  # a real probe: permission bits say nothing for root or on a read-only mount
                with tempfile.TemporaryFile(dir=parent):
                    return True
            except OSError:
                return False
    return False


def _check(args: argparse.Namespace) -> tuple[Any, Any, Any, list[str]]:
    """Validate the space, flags, teacher and dataset; returns (space, locations, inputs, problems)."""
    from autodistill.config import ConfigError, load_space

    problems: list[str] = []
    if getattr(args, "trials", 1) is not None and getattr(args, "trials", 1) < 1:
        problems.append(f"--trials {args.trials}: must be at least 1")
    if getattr(args, "timeout", None) is not None and args.timeout <= 0:
        problems.append(f"--timeout {args.timeout}: must be a positive number of seconds")
    try:
        # --seed is a shorthand for --set train.seed=N, which also seeds the sampler
        seed = [f"train.seed={args.seed}"] if getattr(args, "seed", None) is not None else []
        loaded = load_space(args.space, [*args.overrides, *seed], teacher=args.teacher, dataset=args.dataset)
    except ConfigError as exc:
        return None, None, None, problems + exc.problems
    from autodistill.search import resolve_locations

    loc = resolve_locations(args.space, args.out, args.storage, args.tracking_uri, args.study)
    if not _writable(loc.out):
        problems.append(f"--out {loc.out}: cannot write there; choose a writable directory")
    _quiet_libraries()
    from autodistill.job import inspect_inputs

    inputs, input_problems = inspect_inputs(loaded.config)
    return loaded, loc, inputs, problems + input_problems


def cmd_validate(args: argparse.Namespace) -> int:
    loaded, loc, inputs, problems = _check(args)
    if problems:
        return _fail(problems)
    data = inputs.data
    print(f"{args.space}: OK")
    print(f"  teacher  {loaded.config.teacher} ({inputs.teacher.num_labels} labels)")
    print(
        f"  dataset  {loaded.config.dataset.path}: text '{data.text_column}', label '{data.label_column}', "
        f"{len(data.train.texts)} train examples per trial budget, {len(data.validation.texts)} validation "
        f"({data.validation_source})"
    )
    print(f"  study    '{loc.study_name}' in {loc.out}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    loaded, loc, inputs, problems = _check(args)
    if problems:
        return _fail(problems)
    from autodistill.report import console_table
    from autodistill.search import SearchError, redact, run_search

    seed = loaded.config.train.seed
    print(
        f"autodistill search: study '{loc.study_name}' in {loc.out} (storage {redact(loc.storage)})",
        flush=True,
    )
    try:
        result = run_search(
            loaded, inputs, loc, args.trials, args.timeout, seed, lambda m: print(m, flush=True)
        )
    except SearchError as exc:
        return _fail([str(exc)])
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are saved; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        "\nPareto front (accuracy ↑, latency ↓, size ↓); latency is batch-1 CPU, "
        f"{loaded.config.latency.threads} thread(s), {loaded.config.latency.sequence_length} tokens:"
    )
    print(
        console_table(result.front, result.reference)
        if len(result.front)
        else "  (empty: no trial completed)"
    )
    print(f"\nfront written to {result.csv_path}")
    tracking = loc.tracking_uri
    print(f"browse the runs:  mlflow ui --backend-store-uri {redact(tracking)} --host 127.0.0.1")
    return 0 if len(result.front) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"search": cmd_search, "validate": cmd_validate}
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
