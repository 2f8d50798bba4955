"""Labelled text for sequence classification: columns, splits, labels as the teacher's class ids.

The validation split is used when present, else a seeded holdout of train. The train examples a trial
can see are a fixed, seeded subset, so the teacher's logits are computed for them once.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    text_column: str
    label_column: str
    validation_source: str  # the split's name, or "holdout of <train split>"
    fingerprint: str  # identifies the examples, for cache keys


def label_ids(values: list[Any], num_labels: int, label2id: dict[str, int], column: str) -> list[int]:
    """Labels as class ids in ``[0, num_labels)``; string labels are mapped with the teacher's label2id."""
    missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        raise DataError(
            f"dataset column '{column}': {len(missing)} examples have no label (first at row {missing[0]}); "
            "fill or drop them"
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
    bad = sorted({int(v) for v in values if not 0 <= int(v) < num_labels})
    if bad:
        raise DataError(
            f"dataset column '{column}': labels {bad[:5]} are outside the teacher's {num_labels} classes "
            f"(0..{num_labels - 1}); map them or use a teacher with more labels"
        )
    return [int(v) for v in values]


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
    if spec.max_eval_examples and len(val_rows) > spec.max_eval_examples:
        # a seeded subset, not the first rows: a split sorted by class would otherwise lose classes
        val_rows = val_rows.select(
            np.random.default_rng(spec.split_seed).permutation(len(val_rows))[: spec.max_eval_examples]
        )
    train_rows = train.select(order[:train_examples])

    def split(rows: Any) -> Split:
        texts = [str(t) for t in rows[text_col]]
        return Split(texts=texts, labels=label_ids(list(rows[label_col]), num_labels, label2id, label_col))

    train_split, val_split = split(train_rows), split(val_rows)
    if len(set(val_split.labels)) < 2 and len(val_split.labels) > 1:
        raise DataError(
            f"dataset: validation examples ({validation_source}) hold a single class; accuracy is meaningless"
        )
    return TextData(
        train=train_split,
        validation=val_split,
        text_column=text_col,
        label_column=label_col,
        validation_source=validation_source,
        fingerprint=fingerprint(train_split, val_split),
    )


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
    values = set(train[column])
    if all(isinstance(v, str) for v in values):
        return sorted(values)
    if not all(isinstance(v, int) and v >= 0 for v in values):
        raise DataError(f"dataset column '{column}': labels must be class names or ids 0..K-1")
    return [str(i) for i in range(max(values) + 1)]
