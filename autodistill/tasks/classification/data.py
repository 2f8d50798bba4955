"""Labelled text for sequence classification: columns, splits, labels as the teacher's class ids.

The validation split is used when present, else a seeded holdout of train. The train examples a trial
can see are a fixed, seeded subset, so the teacher's logits are computed for them once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from autodistill.config.schema import DatasetSpec
from autodistill.data.sources import VALIDATION_SPLITS, DataError, load_raw, pick_column
from autodistill.util.hashing import short_hash

TEXT_COLUMNS = ("sentence", "text")
LABEL_COLUMNS = ("label", "labels")


@dataclass
class Split:
    texts: list[str]
    labels: list[int]


@dataclass
class TextData:
    """Train subset and validation examples, with labels as ids of the teacher's classes."""

    train: Split
    validation: Split
    test: Split  # scored once per front student: nothing is stopped, selected or tuned on it
    text_column: str
    label_column: str
    validation_source: str  # the split's name, or "holdout of <train split>"
    test_source: str  # the test split's name, or the part of the validation examples kept for it
    fingerprint: str  # identifies the examples, for cache keys
    unlabeled: list[str] = field(default_factory=list)  # dataset.unlabeled's texts, for the transfer set


def label_ids(
    values: list[Any],
    num_labels: int,
    label2id: dict[str, int],
    column: str,
    names: list[str] | None = None,
) -> list[int]:
    """Labels as class ids in ``[0, num_labels)``; string labels are mapped with the teacher's label2id.

    Integer labels with class ``names`` (a ``ClassLabel``) are mapped by name when the teacher's labels
    are names too: a dataset's class order need not be the teacher's.
    """
    missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        raise DataError(
            f"dataset column '{column}': {len(missing)} examples have no label (first at row {missing[0]}); "
            "fill or drop them"
        )
    if any(isinstance(v, list | tuple | dict) for v in values):
        raise DataError(
            f"dataset column '{column}': labels are lists (multi-label); autodistill distils single-label "
            "classifiers: give each example one class id or name"
        )
    if any(isinstance(v, str) for v in values) and not all(isinstance(v, str) for v in values):
        raise DataError(f"dataset column '{column}': labels mix names and numbers; use one kind")
    if values and isinstance(values[0], str):
        unknown = sorted({v for v in values if v not in label2id})
        if unknown:
            raise DataError(
                f"dataset column '{column}': labels {unknown[:5]} are not among the teacher's labels "
                f"{sorted(label2id)}"
            )
        return [label2id[v] for v in values]
    if not all(float(v).is_integer() for v in values):
        raise DataError(f"dataset column '{column}': labels must be class ids (whole numbers) or class names")
    by_name = _ids_by_name(names, [int(v) for v in values], label2id, column)
    if by_name is not None:
        return [by_name[int(v)] for v in values]
    bad = sorted({int(v) for v in values if not 0 <= int(v) < num_labels})
    if bad:
        raise DataError(
            f"dataset column '{column}': labels {bad[:5]} are outside the teacher's {num_labels} classes "
            f"(0..{num_labels - 1}); map them or use a teacher with more labels"
        )
    return [int(v) for v in values]


def _real_names(names: Any) -> bool:
    """Whether class names say something: not only transformers' defaults (LABEL_0, ...) or ids ("0", ...)."""
    return bool(names) and not all(re.fullmatch(r"(LABEL_)?\d+", str(n)) for n in names)


def _ids_by_name(
    names: list[str] | None, values: list[int], label2id: dict[str, int], column: str
) -> dict[int, int] | None:
    """The dataset's class id → the teacher's class id, matched by name (case aside); None when either
    side has no real names, so ids are taken as they are.

    Raises:
        DataError: a class the examples use has no name among the teacher's labels.
    """
    if not _real_names(names) or not _real_names(list(label2id)):
        return None
    assert names is not None
    teacher = {name.casefold(): i for name, i in label2id.items()}
    used = sorted(set(values))
    unnamed = [v for v in used if not 0 <= v < len(names)]
    if unnamed:
        raise DataError(
            f"dataset column '{column}': labels {unnamed[:5]} have no class name (the column's names are "
            f"{names}); drop those examples"
        )
    if len(teacher) != len(label2id) or any(names[v].casefold() not in teacher for v in used):
        in_order = [name for name, _ in sorted(label2id.items(), key=lambda item: item[1])]
        raise DataError(
            f"dataset column '{column}': its class names {names} do not match the teacher's labels "
            f"{in_order}; rename the dataset's classes or the teacher's id2label so the names agree"
        )
    return {v: teacher[names[v].casefold()] for v in used}


def load_text_data(
    spec: DatasetSpec, num_labels: int, label2id: dict[str, int], train_examples: int
) -> TextData:
    """Load the dataset, choose columns and splits, check labels, and draw the seeded train subset.

    Args:
        spec: the space's dataset section.
        num_labels / label2id: the teacher's classes, to check and map labels.
        train_examples: size of the train subset a trial can see.

    The holdout and the subset are seeded by ``spec.split_seed``, not by the training seed, so a
    teacher and the searches on it share one validation split.

    Raises:
        DataError: a missing dataset, split or column, or labels the teacher cannot predict.
    """
    import numpy as np

    raw = load_raw(spec)
    if spec.train_split not in raw:
        raise DataError(f"dataset.train_split: no split '{spec.train_split}'; splits are {', '.join(raw)}")
    train = raw[spec.train_split]
    columns = list(train.column_names)
    text_col = pick_column(columns, spec.text_column, TEXT_COLUMNS, "text_column")
    label_col = pick_column(columns, spec.label_column, LABEL_COLUMNS, "label_column")

    rng = np.random.default_rng(spec.split_seed)
    val_name = spec.validation_split or next((s for s in VALIDATION_SPLITS if s in raw), None)
    if val_name is not None and val_name not in raw:
        raise DataError(f"dataset.validation_split: no split '{val_name}'; splits are {', '.join(raw)}")
    order = rng.permutation(len(train))
    if val_name is None:
        n_holdout = max(1, round(len(train) * spec.holdout_fraction))
        val_rows, order = train.select(order[:n_holdout]), order[n_holdout:]
        validation_source = f"holdout {spec.holdout_fraction:g} of {spec.train_split}"
    else:
        val_rows = raw[val_name]
        validation_source = val_name
        for col in (text_col, label_col):
            if col not in val_rows.column_names:
                raise DataError(f"dataset: split '{val_name}' has no column '{col}'")
    val_rows, test_rows, test_source = _carve_test(
        raw, val_rows, validation_source, spec, text_col, label_col
    )
    if spec.max_eval_examples and len(val_rows) > spec.max_eval_examples:
        # a seeded subset, not the first rows: a split sorted by class would otherwise lose classes
        val_rows = val_rows.select(
            np.random.default_rng(spec.split_seed).permutation(len(val_rows))[: spec.max_eval_examples]
        )
    train_rows = train.select(order[:train_examples])

    def split(rows: Any) -> Split:
        texts = [str(t) for t in rows[text_col]]
        names = getattr(rows.features[label_col], "names", None)  # a ClassLabel's, in id order
        labels = label_ids(list(rows[label_col]), num_labels, label2id, label_col, names)
        return Split(texts=texts, labels=labels)

    train_split, val_split, test_split = split(train_rows), split(val_rows), split(test_rows)
    if len(set(val_split.labels)) < 2 and len(val_split.labels) > 1:
        raise DataError(
            f"dataset: validation examples ({validation_source}) hold a single class; accuracy is meaningless"
        )
    return TextData(
        train=train_split,
        validation=val_split,
        test=test_split,
        text_column=text_col,
        label_column=label_col,
        validation_source=validation_source,
        test_source=test_source,
        fingerprint=fingerprint(train_split, val_split, test_split),
    )


def _labelled(rows: Any, label_col: str) -> bool:
    """Whether a split carries labels: hub test splits often hold -1 (or nothing) in the label column."""
    if label_col not in rows.column_names or len(rows) == 0:
        return False
    return any(v is not None and not (isinstance(v, int | float) and v < 0) for v in rows[label_col])


def _carve_test(
    raw: Any, val_rows: Any, validation_source: str, spec: DatasetSpec, text_col: str, label_col: str
) -> tuple[Any, Any, str]:
    """(validation rows, test rows, where the test rows come from).

    The test examples are the dataset's labelled test split when it has one (or ``dataset.test_split``),
    else a seeded ``dataset.test_fraction`` of the validation examples, so the teacher, which never
    trained on validation examples, never saw them either. Seeded by ``split_seed`` like the holdout.
    """
    import numpy as np

    named = spec.test_split
    if named is not None and named not in raw:
        raise DataError(f"dataset.test_split: no split '{named}'; splits are {', '.join(raw)}")
    name = named or ("test" if "test" in raw and _labelled(raw["test"], label_col) else None)
    if name is not None:
        missing = [c for c in (text_col, label_col) if c not in raw[name].column_names]
        if missing:
            raise DataError(f"dataset.test_split: split '{name}' has no column '{missing[0]}'")
        if not _labelled(raw[name], label_col):
            raise DataError(
                f"dataset.test_split: split '{name}' has no labels in column '{label_col}'; "
                "leave dataset.test_split unset to keep part of the validation examples instead"
            )
        return val_rows, raw[name], name
    order = np.random.default_rng([spec.split_seed, 1]).permutation(len(val_rows))
    n_test = round(len(val_rows) * spec.test_fraction)
    if n_test < 1 or n_test >= len(val_rows):
        raise DataError(
            f"dataset.test_fraction: {spec.test_fraction} of {len(val_rows)} validation examples leaves no "
            "test or no validation example; choose a fraction that leaves both, or name a test split"
        )
    source = f"{spec.test_fraction:g} of {validation_source}"
    return val_rows.select(order[n_test:]), val_rows.select(order[:n_test]), source


def fingerprint(*splits: Split) -> str:
    """Identifies the examples and their labels, for cache keys and the teacher's card."""
    return short_hash([[s.texts, s.labels] for s in splits])


def discover_labels(spec: DatasetSpec) -> list[str]:
    """Class names of a dataset, in id order, for a teacher that is to be trained on it.

    ``ClassLabel`` names when the dataset declares them; sorted strings for string labels (class
    folders among them); ``"0".."K-1"`` for integer labels.
    """
    raw = load_raw(spec)
    if spec.train_split not in raw:
        raise DataError(f"dataset.train_split: no split '{spec.train_split}'; splits are {', '.join(raw)}")
    train = raw[spec.train_split]
    column = pick_column(list(train.column_names), spec.label_column, LABEL_COLUMNS, "label_column")
    names = getattr(train.features[column], "names", None)
    if names:
        return list(names)
    if any(isinstance(v, list | tuple | dict) for v in train[column]):
        raise DataError(
            f"dataset column '{column}': labels are lists (multi-label); a teacher is trained for one "
            "class per example: give each example one class id or name"
        )
    values = set(train[column])
    if all(isinstance(v, str) for v in values):
        return sorted(values)
    if not all(isinstance(v, int) and v >= 0 for v in values):
        raise DataError(f"dataset column '{column}': labels must be class names or ids 0..K-1")
    return [str(i) for i in range(max(values) + 1)]
