"""`autodistill report` and `export`: commands that read a finished study (and what `train` shares with them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autodistill.cli.common import EXIT_INTERRUPTED, fail, quiet_libraries
from autodistill.util.errors import first_line
from autodistill.util.files import replaceable, writable


def study_locator(p: argparse.ArgumentParser) -> None:
    """The flags of every command that reads a finished study."""
    p.add_argument("--out", help="the directory a search wrote (holds optuna.db)")
    p.add_argument("--storage", help="Optuna storage URL instead of --out, e.g. postgresql://...")
    p.add_argument("--study", help="study name (needed when the storage holds several)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the one the search used)")


def open_study(args: argparse.Namespace) -> Any:
    from autodistill.store.studies import open_existing

    quiet_libraries()
    return open_existing(args.out, args.storage, args.study)


def cmd_report(args: argparse.Namespace) -> int:
    from autodistill.store.studies import StudyError, study_dir, tracking_uri

    try:
        study = open_study(args)
        uri = tracking_uri(study, args.tracking_uri, args.out)
    except StudyError as exc:
        return fail([str(exc)])
    from autodistill.report import console_table, front_frame, front_reference, quality_metric, write_report
    from autodistill.store.tracking import Tracker

    to = args.to or study_dir(study, args.out)
    front = front_frame(study)
    reference = front_reference(study, front)
    csv_path, html_path = write_report(study, reference, to)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent:
        Tracker(uri, study.study_name).log_artifact(parent, html_path)
    metric = quality_metric(study)[0]
    print(console_table(front, reference, metric) if len(front) else "(empty front)")
    print(f"\nreport: {html_path}\nfront:  {csv_path}")
    return 0


def destination_problem(to: Path) -> str | None:
    """Why a model directory cannot be written to ``to`` (before any compute), or None."""
    if not writable(to):
        return f"--to {to}: cannot write there; choose a writable directory"
    if not replaceable(to, "autodistill.json"):
        return f"--to {to}: it holds other files, which would be replaced; choose an empty or new directory"
    return None


def cmd_export(args: argparse.Namespace) -> int:
    from autodistill.store.studies import StudyError, completed_trial, tracking_uri

    problem = destination_problem(args.to)
    if problem:
        return fail([problem])
    try:
        study = open_study(args)
        trial = completed_trial(study, args.trial)
        from autodistill.deliver.export import export_trial

        # asked only when this machine does not hold the student: it is then fetched from MLflow
        result = export_trial(
            study, trial, args.to, args.onnx, lambda: tracking_uri(study, args.tracking_uri, args.out)
        )
    except StudyError as exc:
        return fail([str(exc)])
    except (OSError, RuntimeError, ValueError) as exc:  # a moved tokenizer, an ONNX mismatch, ...
        return fail([f"export {args.trial}: {first_line(exc)}"])
    if "downloaded_from_run" in result:
        print(f"student: downloaded from MLflow run {result['downloaded_from_run']}")
    print(f"exported trial {args.trial} to {result['path']}")
    if "onnx_max_abs_diff" in result:
        print(f"model.onnx: largest logit gap to torch {result['onnx_max_abs_diff']:.1e}")
    return 0


def cmd_retime(args: argparse.Namespace) -> int:
    """Time the chosen trials and the teacher on this machine, record the measurement in the study,
    and print and write the front recomputed on it."""
    from autodistill.deliver.retime import parse_trials

    try:
        which = parse_trials(args.trials)
    except ValueError as exc:
        return fail([str(exc)])
    if args.to is not None and not writable(args.to):
        return fail([f"--to {args.to}: cannot write there; choose a writable directory"])
    from autodistill.store.studies import StudyError, study_dir, tracking_uri

    try:
        study = open_study(args)
        uri = tracking_uri(study, args.tracking_uri, args.out)
        from autodistill.deliver.retime import chosen_trials, load_teacher, retime_space
        from autodistill.search.inputs import latency_device_problem

        trials = chosen_trials(study, which)
        space = retime_space(study, args.teacher)
        problem = latency_device_problem(space)
        if problem:
            return fail([problem])
        to = args.to or study_dir(study, args.out)
        if not writable(to):
            raise StudyError(f"{to}: cannot write the retimed front there; give --to a writable directory")
        teacher = load_teacher(space)
    except StudyError as exc:
        return fail([str(exc)])
    from autodistill.deliver.retime import file_label, retime, retimed_front, teacher_here
    from autodistill.report import console_table, front_frame, quality_metric
    from autodistill.report.console import write_csv
    from autodistill.store.tracking import Tracker

    try:
        measurement = retime(study, trials, space, teacher)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing recorded; rerun to retime", file=sys.stderr)
        return EXIT_INTERRUPTED
    front = front_frame(study, retimed_front(study, measurement, space))
    reference = teacher_here(study, measurement)
    csv_path = write_csv(front, to / f"pareto-{file_label(measurement.machine)}.csv")
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent:
        tracker = Tracker(uri, study.study_name)
        tracker.log_artifact(parent, csv_path)
        tracker.set_tag(parent, f"autodistill.retimed.{file_label(measurement.machine)}", measurement.when)
    metric, direction = quality_metric(study)
    print(
        f"\nPareto front on {measurement.machine} ({metric} {'↑' if direction == 'maximize' else '↓'}, "
        f"latency ↓, size ↓), from the {len(measurement.trials)} trial(s) retimed here:"
    )
    print(
        console_table(front, reference, metric) if len(front) else "  (empty: no trial meets the constraints)"
    )
    print(f"\nfront written to {csv_path}; recorded in the study as retimed@{measurement.machine}")
    return 0
