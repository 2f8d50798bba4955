"""`autodistill teacher`: check the flags, then fine-tune (or reuse) a teacher."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autodistill.cli.common import EXIT_INTERRUPTED, fail, quiet_libraries
from autodistill.store.locations import check_tracking
from autodistill.util.errors import first_line
from autodistill.util.files import replaceable, writable
from autodistill.util.paths import looks_local


def _teacher_recipe(args: argparse.Namespace) -> tuple[Any, list[str]]:
    from pydantic import ValidationError

    from autodistill.config.schema import DatasetSpec
    from autodistill.deliver.teacher_prep import TeacherRecipe

    problems = []
    for flag, value in (
        ("--epochs", args.epochs),
        ("--batch-size", args.batch_size),
        ("--lr", args.lr),
        ("--max-length", args.max_length),
        ("--max-steps", args.max_steps),
    ):
        if value is not None and value <= 0:
            problems.append(f"{flag} {value}: must be positive")
    base = Path(args.base)
    if args.base.endswith(".json"):
        if not base.is_file():
            problems.append(f"--base {args.base}: no such config file")
        if not args.tokenizer:
            problems.append(
                f"--base {args.base}: a model built from a config needs --tokenizer DIR_OR_HUB_ID"
            )
    elif looks_local(args.base) and not (base / "config.json").is_file():
        problems.append(
            f"--base {args.base}: not a checkpoint directory (no config.json); give a directory or hub id"
        )
    if not writable(args.out):
        problems.append(f"--out {args.out}: cannot write there; choose a writable directory")
    elif not replaceable(args.out, "teacher_card.json"):
        problems.append(
            f"--out {args.out}: it holds other files, which would be replaced; choose an empty or new directory"
        )
    if args.tracking_uri:
        problems += [p for p in [check_tracking(args.tracking_uri)] if p]
    try:
        spec = DatasetSpec(
            path=args.dataset,
            text_column=args.text_column,
            label_column=args.label_column,
            validation_split=args.validation_split,
            holdout_fraction=args.holdout_fraction,
            split_seed=args.split_seed,
        )
    except ValidationError as exc:  # each bad value named by its flag
        return None, problems + [
            f"--{str(e['loc'][0]).replace('_', '-')} {e.get('input')}: {e['msg'].lower()}"
            for e in exc.errors()
        ]
    recipe = TeacherRecipe(
        base=args.base,
        dataset=spec,
        tokenizer=args.tokenizer,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_length=args.max_length,
        seed=args.seed,
    )
    return recipe, problems


def cmd_teacher(args: argparse.Namespace) -> int:
    recipe, problems = _teacher_recipe(args)
    if problems:
        return fail(problems)
    quiet_libraries()
    from autodistill.data.sources import DataError
    from autodistill.tasks.classification.data import discover_labels, load_text_data

    try:
        labels = discover_labels(recipe.dataset)
        label2id = {name: i for i, name in enumerate(labels)}
        data = load_text_data(recipe.dataset, len(labels), label2id, 10**12)
    except DataError as exc:
        return fail([str(exc)])
    if len(labels) < 2:
        return fail([f"--dataset {args.dataset}: a classifier needs at least two classes, found {labels}"])
    from tqdm.auto import tqdm

    from autodistill.deliver.teacher_prep import existing_card, recipe_key, train_teacher
    from autodistill.store.tracking import log_teacher_run

    key = recipe_key(recipe, data.fingerprint)
    card = existing_card(args.out, key)
    if card is not None:
        print(
            f"teacher: reusing {args.out} (same inputs; validation accuracy {card['validation_accuracy']:.4f})"
        )
        return 0
    tracking = args.tracking_uri or f"sqlite:///{args.out.resolve().parent / 'mlflow.db'}"
    with tqdm(desc="fine-tuning", unit="step", disable=None) as bar:

        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.3f}")

        try:
            card, losses = train_teacher(
                recipe, labels, data, args.out, key, lambda m: print(m, flush=True), on_step
            )
        except KeyboardInterrupt:
            print("\ninterrupted: nothing was written; rerun the same command", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (OSError, ValueError) as exc:
            return fail([first_line(exc)])
    from autodistill.store.locations import redact

    run_id = log_teacher_run(tracking, card, losses, args.out)
    print(
        f"teacher: {args.out} — validation accuracy {card['validation_accuracy']:.4f} on "
        f"{card['validation_examples']} examples ({card['validation_source']}), test accuracy "
        f"{card['test_accuracy']:.4f} on {card['test_examples']} ({card['test_source']}), {card['steps']} steps in "
        f"{card['train_seconds']:.0f} s; MLflow run {run_id} in {redact(tracking)}"
    )
    return 0
