"""Raw examples through ``datasets.load_dataset``: a hub id, a local directory it understands, one
csv/tsv/json/jsonl/parquet file, or a directory of class folders (one sub-directory per class, one
document per file, the layout of scikit-learn's ``load_files``). Tasks choose columns and splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodistill.config.schema import DatasetSpec
from autodistill.util.errors import first_line
from autodistill.util.paths import looks_local

VALIDATION_SPLITS = ("validation", "dev", "valid", "val")
FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class DataError(ValueError):
    """The dataset cannot be used as asked; the message says which key or flag to change."""


def load_raw(spec: DatasetSpec, source: str = "--dataset") -> Any:
    """``datasets.DatasetDict`` for a hub id, a local directory or one data file; errors name ``source``
    (the flag or key that gave the path)."""
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
                    f"{source} {spec.path}: unsupported file type '{path.suffix}'; "
                    f"use one of {', '.join(FILE_BUILDERS)} or a directory"
                )
            extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
            return datasets.load_dataset(builder, data_files={spec.train_split: str(path)}, **extra)
        if looks_local(spec.path):
            if not path.is_dir():
                raise DataError(f"{source} {spec.path}: no such file or directory")
            if is_class_folders(path):
                return load_class_folders(path)
            return datasets.load_dataset(str(path), name=spec.name)
        return datasets.load_dataset(spec.path, name=spec.name)  # a hub id
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the one line
        raise DataError(f"{source} {spec.path}: cannot load it ({first_line(exc)})") from None


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
