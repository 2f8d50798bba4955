"""Data: load with ``datasets.load_dataset``, pick columns and splits, tokenise once and cache.

A dataset is a hub id, a local directory that ``load_dataset`` understands, one csv/tsv/json/jsonl/
parquet file, or a directory of class folders (one sub-directory per class, one document per file,
the layout of scikit-learn's ``load_files``). The validation split is used when present, else a seeded holdout of train. The train
examples a trial can see are a fixed, seeded subset, so the teacher's logits are computed for them once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.cache import atomic_torch_save, load_torch
from autodistill.config import DatasetSpec

TEXT_COLUMNS = ("sentence", "text")
LABEL_COLUMNS = ("label", "labels")
VALIDATION_SPLITS = ("validation", "dev", "valid", "val")
FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class DataError(ValueError):
    """The dataset cannot be used as asked; the message says which key or flag to change."""


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


def load_raw(spec: DatasetSpec) -> Any:
    """``datasets.DatasetDict`` for a hub id, a local directory or one data file."""
    import datasets

    if not spec.path:
        raise DataError(
            "no dataset given: pass --dataset PATH_OR_HUB_ID or set dataset.path in the space file"
        )
    path = Path(spec.path)
    try:
        if path.is_file():
            builder = FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise DataError(
                    f"--dataset {spec.path}: unsupported file type '{path.suffix}'; "
                    f"use one of {', '.join(FILE_BUILDERS)} or a directory"
                )
            extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
            return datasets.load_dataset(builder, data_files={spec.train_split: str(path)}, **extra)
        if path.exists() or spec.path.startswith((".", "/", "~")):
            if not path.is_dir():
                raise DataError(f"--dataset {spec.path}: no such file or directory")
            if is_class_folders(path):
                return load_class_folders(path)
            return datasets.load_dataset(str(path), name=spec.name)
        return datasets.load_dataset(spec.path, name=spec.name)  # a hub id
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"--dataset {spec.path}: cannot load it ({first_line})") from None


DATA_SUFFIXES = {*FILE_BUILDERS, ".arrow", ".txt"}
SPLIT_NAMES = ("train", *VALIDATION_SPLITS, "test")


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_class_folders(path: Path) -> bool:
    """A directory with no data files of its own and at least two sub-directories holding files
    (classes), or split-named sub-directories (train/, validation/, ...) that hold class folders."""
    if any(f.is_file() and f.suffix.lower() in DATA_SUFFIXES - {".txt"} for f in path.iterdir()):
        return False
    subdirs = _subdirs(path)
    if subdirs and all(d.name in SPLIT_NAMES for d in subdirs):
        return all(len(_subdirs(d)) >= 2 for d in subdirs)
    return len([d for d in subdirs if any(f.is_file() for f in d.iterdir())]) >= 2


def _read_document(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # older corpora (BBC News among them) mix encodings


def _class_folder_split(path: Path) -> Any:
    import datasets

    texts, labels = [], []
    for folder in _subdirs(path):  # sorted: stable label order across runs and machines
        for doc in sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")):
            texts.append(_read_document(doc).strip())
            labels.append(folder.name)
    return datasets.Dataset.from_dict({"text": texts, "label": labels})


def load_class_folders(path: Path) -> Any:
    """A ``DatasetDict`` with columns ``text`` and ``label`` (the folder name) per split."""
    import datasets

    subdirs = _subdirs(path)
    if all(d.name in SPLIT_NAMES for d in subdirs):
        return datasets.DatasetDict({d.name: _class_folder_split(d) for d in subdirs})
    return datasets.DatasetDict({"train": _class_folder_split(path)})


def pick_column(columns: list[str], named: str | None, candidates: tuple[str, ...], key: str) -> str:
    if named:
        if named not in columns:
            raise DataError(f"dataset.{key}: column '{named}' not found; columns are {', '.join(columns)}")
        return named
    for name in candidates:
        if name in columns:
            return name
    raise DataError(
        f"dataset.{key}: none of {', '.join(candidates)} among columns {', '.join(columns)}; "
        f"name the column with dataset.{key}"
    )


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
    h = hashlib.sha256()
    for s in splits:
        h.update(json.dumps([s.texts, s.labels]).encode())
    return h.hexdigest()[:16]


@dataclass
class Encoded:
    """Token ids padded to the longest example, and each example's true length.

    Batches are cut to their own longest example (dynamic padding) by ``batch``.
    """

    input_ids: Any  # LongTensor [N, L]
    lengths: Any  # LongTensor [N]
    labels: Any  # LongTensor [N]

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def batch(self, index: Any) -> dict[str, Any]:
        import torch

        lengths = self.lengths[index]
        width = int(lengths.max())
        ids = self.input_ids[index, :width]
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        return {"input_ids": ids, "attention_mask": mask, "labels": self.labels[index]}


def encode(split: Split, tokenizer: Any, max_length: int, cache_dir: Path | None) -> Encoded:
    """Tokenise a split with the teacher's tokenizer, once: the result is cached under ``cache_dir``."""
    import torch

    key = hashlib.sha256(
        json.dumps([split.texts, split.labels, tokenizer.name_or_path, len(tokenizer), max_length]).encode()
    ).hexdigest()[:16]
    path = cache_dir / f"tokens-{key}.pt" if cache_dir else None
    cached = load_torch(path) if path else None
    if cached is not None:
        return Encoded(**cached)
    tokenizer.padding_side = "right"  # ``Encoded.batch`` trims padding from the right
    enc = tokenizer(
        split.texts, truncation=True, max_length=max_length, padding="longest", return_tensors="pt"
    )
    encoded = Encoded(
        input_ids=enc["input_ids"],
        lengths=enc["attention_mask"].sum(dim=1),
        labels=torch.tensor(split.labels, dtype=torch.long),
    )
    if path:
        atomic_torch_save(vars(encoded), path)
    return encoded


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
