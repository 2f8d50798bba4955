"""Command line: ``autodistill search`` and ``autodistill validate``.

Heavy libraries (torch, transformers, mlflow, optuna) are imported only after the arguments and the
space file are checked, so ``--help`` and most mistakes answer at once. Every mistake in the input
ends with one line per problem, exit code 2, no traceback, and nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autodistill import __version__
from autodistill.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, fail, quiet_libraries
from autodistill.cli.lm_teacher_command import add_parser as add_lm_teacher_parser
from autodistill.cli.lm_teacher_command import cmd_lm_teacher
from autodistill.cli.proxy_command import add_parser as add_proxy_parser
from autodistill.cli.proxy_command import cmd_storage_proxy
from autodistill.cli.study_commands import cmd_export, cmd_report, cmd_retime, study_locator
from autodistill.cli.teacher_command import cmd_teacher
from autodistill.cli.train_command import add_parser as add_train_parser
from autodistill.cli.train_command import cmd_train
from autodistill.util.files import writable


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
        "--cache-dir",
        help="directory for the tokenised data and the teacher's targets and metrics, which several workers "
        "may share: the first computes, the others wait and read (wins over cache.dir; default: OUT/cache)",
    )
    p.add_argument(
        "--storage", help="Optuna storage URL (default: sqlite:///OUT/optuna.db), e.g. postgresql://..."
    )
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite:///OUT/mlflow.db), or a server URL"
    )
    p.add_argument(
        "--artifact-root",
        help="where a new MLflow experiment keeps its artifacts when the tracking store is a database: a "
        "directory every worker sees, or a URI such as s3://bucket/prefix (default: OUT/mlartifacts)",
    )
    p.add_argument(
        "--study", help="study name, also the MLflow experiment name (default: the space file's name)"
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let transformers run the teacher repository's own code (off by default: it is arbitrary code)",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load a teacher whose weights are pickle files (off by default: safetensors only; pickle can run code)",
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
    search.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on this machine, each running trials of the same study (default 1); a new "
        "study then lives in OUT/optuna.journal, which they share without a server",
    )
    search.add_argument(
        "--gpus",
        help="GPUs the workers take in turn, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES, else every GPU); "
        "several workers may share one",
    )
    search.add_argument(
        "--gpu-memory-fraction",
        type=float,
        help="the most of its GPU's memory each worker may take, in (0, 1], e.g. 0.25 for four workers on one GPU",
    )

    validate = sub.add_parser(
        "validate",
        help="check a space, teacher and dataset without training",
        description="Check the space file, the teacher and the dataset without training; print every problem "
        "at once; exit 0 when clean, 2 otherwise.",
    )
    _add_study_flags(validate)

    report = sub.add_parser(
        "report",
        help="write report.html and pareto.csv for a study",
        description="Write the Pareto report (a self-contained report.html: trade-off charts, importances, "
        "history, sortable table of all trials) and pareto.csv into the study's directory, and log the report "
        "on the study's parent MLflow run. `search` writes the same at its end.",
    )
    study_locator(report)
    report.add_argument(
        "--to", type=Path, help="directory for report.html and pareto.csv (default: the study's)"
    )

    export = sub.add_parser(
        "export",
        help="export a trial's student as a Hugging Face model directory (and ONNX)",
        description="Write the student of TRIAL (saved at trial time for trials on the front) as a model "
        "directory that AutoModelForSequenceClassification.from_pretrained loads: safetensors, config with "
        "id2label, tokenizer, model card; --onnx adds model.onnx checked against torch. On a machine "
        "that does not hold the saved student, it is downloaded from the trial's MLflow run (a tracking "
        "server's artifact store).",
    )
    export.add_argument(
        "trial", type=int, metavar="TRIAL", help="trial number, from pareto.csv or the report"
    )
    export.add_argument("--to", type=Path, required=True, help="directory to write the model to")
    export.add_argument(
        "--onnx", action="store_true", help="also write model.onnx (outputs checked within 1e-4)"
    )
    study_locator(export)

    retime = sub.add_parser(
        "retime",
        help="time a study's students and its teacher again on this machine, and recompute the front",
        description="Re-measure the latency of chosen trials (their student graphs, built from their "
        "settings) and of the teacher on this machine, in turns as latency_fraction does; record the "
        "measurement in the study (retimed@MACHINE, one per machine; AUTODISTILL_MACHINE names it) and "
        "print and write the front recomputed on it (pareto-MACHINE.csv). Run it on the machine you deploy "
        "on, against the same storage, to choose on that machine's latencies.",
    )
    study_locator(retime)
    retime.add_argument(
        "--trials",
        default="front",
        help="which trials: front (default: the search's front), all (every completed trial), or numbers "
        "such as 3,7,12",
    )
    retime.add_argument(
        "--teacher", help="the study's teacher at another path on this machine (checked to be the same files)"
    )
    retime.add_argument(
        "--to", type=Path, help="directory for pareto-MACHINE.csv (default: the study's directory)"
    )

    add_train_parser(sub)

    teacher = sub.add_parser(
        "teacher",
        help="fine-tune a teacher from a pretrained checkpoint or a config",
        description="Fine-tune a sequence classifier on a dataset and write it as a save_pretrained directory "
        "(with id2label and the tokenizer) plus teacher_card.json with its validation accuracy, data and "
        "settings; logged to MLflow. Rerunning with the same inputs reuses the result.",
    )
    teacher.add_argument(
        "--base",
        required=True,
        help="pretrained checkpoint: a local directory or hub id; or a config.json for a from-scratch model "
        "(then --tokenizer is required)",
    )
    teacher.add_argument(
        "--dataset", required=True, help="hub id, local directory, class-folder directory, or data file"
    )
    teacher.add_argument("--out", required=True, type=Path, help="directory to write the teacher to")
    teacher.add_argument("--tokenizer", help="tokenizer directory or hub id (default: the base's)")
    teacher.add_argument(
        "--epochs", type=float, default=2.0, help="passes over the training split (default 2)"
    )
    teacher.add_argument("--max-steps", type=int, help="optimisation steps; wins over --epochs")
    teacher.add_argument("--batch-size", type=int, default=32, help="default 32")
    teacher.add_argument("--lr", type=float, default=5e-5, help="AdamW peak learning rate (default 5e-5)")
    teacher.add_argument("--max-length", type=int, default=64, help="tokens per example (default 64)")
    teacher.add_argument(
        "--seed", type=int, default=0, help="seeds the batch order and the new head (default 0)"
    )
    teacher.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seeds the validation holdout; keep it equal to the space's dataset.split_seed (default 0) so the "
        "search scores students on examples the teacher never saw",
    )
    teacher.add_argument("--text-column", help="default: 'sentence' or 'text'")
    teacher.add_argument("--label-column", help="default: 'label'")
    teacher.add_argument(
        "--validation-split", help="default: 'validation'/'dev' when present, else a holdout"
    )
    teacher.add_argument(
        "--holdout-fraction", type=float, default=0.2, help="seeded holdout of train (default 0.2)"
    )
    teacher.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: sqlite:///mlflow.db beside --out)",
    )
    add_lm_teacher_parser(sub)
    add_proxy_parser(sub)
    return parser


def _check(args: argparse.Namespace) -> tuple[Any, Any, Any, list[str]]:
    """Validate the space, flags, teacher and dataset; returns (space, locations, inputs, problems)."""
    from autodistill.config.spacefile import ConfigError, load_space

    problems: list[str] = []
    if getattr(args, "trials", 1) is not None and getattr(args, "trials", 1) < 1:
        problems.append(f"--trials {args.trials}: must be at least 1")
    if getattr(args, "timeout", None) is not None and args.timeout <= 0:
        problems.append(f"--timeout {args.timeout}: must be a positive number of seconds")
    problems += _worker_problems(args)
    try:
        # --seed is a shorthand for --set train.seed=N, which also seeds the sampler
        flags = [f"train.seed={args.seed}"] if getattr(args, "seed", None) is not None else []
        loaded = load_space(
            args.space,
            [*args.overrides, *flags],
            teacher=args.teacher,
            dataset=args.dataset,
            # passed apart from the overrides: these flags alone may switch them on, not --set or the file
            trust_remote_code=args.trust_remote_code,
            allow_pickle=args.allow_pickle,
        )
    except ConfigError as exc:
        return None, None, None, problems + exc.problems
    from autodistill.store.locations import (
        check_artifact_root,
        check_database,
        check_tracking,
        check_workers,
        resolve_locations,
    )

    cache_dir = args.cache_dir or loaded.config.cache.dir
    workers = getattr(args, "workers", 1)
    loc = resolve_locations(
        args.space,
        args.out,
        args.storage,
        args.tracking_uri,
        args.study,
        cache_dir,
        workers,
        args.artifact_root,
    )
    if not writable(loc.out):
        problems.append(f"--out {loc.out}: cannot write there; choose a writable directory")
    else:  # connecting writes nothing, so validate checks the stores too
        checks = (
            check_database("--storage", loc.storage),
            check_workers("--storage", loc.storage, workers),
            check_tracking(loc.tracking_uri),
            check_artifact_root(args.artifact_root, loc.tracking_uri),
        )
        problems += [p for p in checks if p]
    if cache_dir and not writable(loc.cache_dir):
        source = "--cache-dir" if args.cache_dir else f"{args.space}: cache.dir:"
        problems.append(f"{source} {cache_dir}: cannot write there; choose a writable directory")
    quiet_libraries()
    from autodistill.search.inputs import inspect_inputs

    inputs, input_problems = inspect_inputs(loaded.config, loc.cache_dir)
    return loaded, loc, inputs, problems + input_problems


def _worker_problems(args: argparse.Namespace) -> list[str]:
    """Mistakes in --workers, --gpus and --gpu-memory-fraction (search only)."""
    problems = []
    if getattr(args, "workers", 1) < 1:
        problems.append(f"--workers {args.workers}: must be at least 1")
    fraction = getattr(args, "gpu_memory_fraction", None)
    if fraction is not None and not 0 < fraction <= 1:
        problems.append(
            f"--gpu-memory-fraction {fraction}: must be in (0, 1], e.g. 0.5 for two workers a GPU"
        )
    if getattr(args, "gpus", None) is not None:
        import torch

        from autodistill.cli.workers import gpu_list

        named = gpu_list(args.gpus)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        unknown = [
            g for g in named if not ((g.isdigit() and int(g) < count) or g.startswith(("GPU-", "MIG-")))
        ]
        if not named:
            problems.append(f"--gpus {args.gpus!r}: names no GPU; give indices such as 0,1")
        elif not count:
            problems.append(
                f"--gpus {args.gpus}: torch finds no CUDA device on this machine; drop --gpus to run the "
                "workers on the CPU cores"
            )
        elif unknown:
            problems.append(
                f"--gpus {args.gpus}: no GPU {', '.join(unknown)} here; this process sees {count} "
                f"(indices 0 to {count - 1})"
            )
    return problems


def cmd_validate(args: argparse.Namespace) -> int:
    loaded, loc, inputs, problems = _check(args)
    if problems:
        return fail(problems)
    print(f"{args.space}: OK")
    for row, text in {"task": loaded.config.task, **inputs.summary}.items():
        print(f"  {row:<8} {text}")
    print(f"  study    '{loc.study_name}' in {loc.out}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    loaded, loc, inputs, problems = _check(args)
    if problems:
        return fail(problems)
    from autodistill.search import SearchError, run_search
    from autodistill.search.workers import supervised_index
    from autodistill.store.locations import artifacts_stay_here, redact

    print(
        f"autodistill search: study '{loc.study_name}' in {loc.out} (storage {redact(loc.storage)})",
        flush=True,
    )
    note = artifacts_stay_here(loc, args.artifact_root)
    if note and supervised_index() is None:
        print(note, flush=True)
    if supervised_index() is None and (args.workers > 1 or args.gpus is not None):
        return _search_with_workers(args, loaded, loc, inputs)
    from autodistill.util.devices import limit_gpu_memory

    limit_gpu_memory(args.gpu_memory_fraction)
    try:
        result = run_search(loaded, inputs, loc, args.trials, args.timeout, loaded.config.train.seed, _say)
    except SearchError as exc:
        return fail([str(exc)])
    except KeyboardInterrupt:
        if supervised_index() is None:  # a worker's supervisor says it once for all
            print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    if supervised_index() is not None:  # a worker of `--workers N`: its supervisor prints the front
        return 0
    print_front(result.study, result.front, result.reference, loaded.config, result.csv_path)
    print(browse_lines(loc.tracking_uri, loc.storage, result.experiment_id))
    return 0 if len(result.front) else 1


INTERRUPTED = "\ninterrupted: finished trials are saved; rerun the same command to resume"


def _say(message: str) -> None:
    print(message, flush=True)


def print_front(study: Any, front: Any, reference: dict[str, float], space: Any, csv_path: Path) -> None:
    from autodistill.report import console_table, quality_metric

    metric, direction = quality_metric(study)
    print(
        f"\nPareto front ({metric} {'↑' if direction == 'maximize' else '↓'}, latency ↓, size ↓); latency is "
        f"batch-1 CPU, {space.latency.threads} thread(s), {space.latency.sequence_length} tokens:"
    )
    print(console_table(front, reference, metric) if len(front) else "  (empty: no trial completed)")
    print(f"\nfront written to {csv_path}; report: {csv_path.with_name('report.html')}")


def _search_with_workers(args: argparse.Namespace, loaded: Any, loc: Any, inputs: Any) -> int:
    """``--workers N``: open the study here (a study that cannot be resumed is one line, before any
    compute), start the workers, then report the front they found together."""
    from autodistill.cli.workers import supervise
    from autodistill.search import SearchError
    from autodistill.search.study import open_study, queue_first_trials, reopen_study
    from autodistill.store.tracking import Tracker, enable_concurrent_writers

    try:
        study = open_study(loc, loaded.config, loaded.config.train.seed, inputs.fingerprint)
        queue_first_trials(study, loaded.config)  # here, once: workers racing to queue them could both do it
        enable_concurrent_writers(loc.tracking_uri)
        # The store's tables and the study's experiment made here, once: workers racing to create them
        # on an empty SQLite file can fail half-way through MLflow's migrations.
        Tracker(loc.tracking_uri, loc.study_name, loc.artifact_root)
    except SearchError as exc:
        return fail([str(exc)])
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    code, study = supervise(args.argv, args, loc.storage, lambda: reopen_study(loc), args.trials, _say)
    if code == EXIT_BAD_INPUT:  # every worker refused its input and said why: nothing ran
        return code
    from autodistill.search.controller import settle_after_workers

    result = settle_after_workers(study, loc, interrupted=code == EXIT_INTERRUPTED)
    if code == EXIT_INTERRUPTED:
        print(INTERRUPTED, file=sys.stderr)
        return code
    if result is None:
        print("no worker prepared the study; see the workers' lines above", file=sys.stderr)
        return 1
    print_front(study, result.front, result.reference, loaded.config, result.csv_path)
    print(browse_lines(loc.tracking_uri, loc.storage, result.experiment_id))
    return code or (0 if len(result.front) else 1)


def browse_lines(tracking_uri: str, storage: str, experiment_id: str) -> str:
    """How to open the study: MLflow's UI on its experiment, or optuna-dashboard on its storage."""
    from autodistill.store.locations import experiment_url, redact

    url = experiment_url(tracking_uri, experiment_id)
    if tracking_uri.startswith(("http://", "https://")):  # a server: the UI is already there
        mlflow = f"browse the runs:  {url}"
    else:
        ui = f"mlflow ui --backend-store-uri {redact(tracking_uri)} --host 127.0.0.1"
        mlflow = f"browse the runs:  {ui}; then open {url}"
    return f"{mlflow}\nor:  optuna-dashboard {redact(storage)}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # `search --workers N` starts its workers with the same arguments
    commands = {
        "search": cmd_search,
        "validate": cmd_validate,
        "teacher": cmd_teacher,
        "lm-teacher": cmd_lm_teacher,
        "report": cmd_report,
        "export": cmd_export,
        "retime": cmd_retime,
        "storage-proxy": cmd_storage_proxy,
        "train": cmd_train,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
