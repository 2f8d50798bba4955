"""Files written atomically: readers see the old file or the whole new one, never half of it.

A cache file is computed once under a lock file, however many processes share it. Also the checks that
decide whether a directory may be written or replaced, made before any compute. Temporaries are named
after their writer, so what a killed one left is cleaned on the next start (see ``leftovers``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodistill.util.leftovers import aside_path, clean_leftovers, temporary_prefix


def atomic_write(path: Path, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp)`` on a uniquely named temporary file beside ``path``, then rename it into place.

    The unique name lets several processes write the same path at once; the last rename wins whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)  # atomic on POSIX
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_text_save(text: str, path: Path) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_json_save(obj: Any, path: Path) -> Path:
    return atomic_text_save(json.dumps(obj, indent=2, sort_keys=True), path)


def atomic_torch_save(obj: Any, path: Path) -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: Path) -> Any | None:
    """The cached object, or None when there is none. Tensors and plain containers only (no pickle code).

    Tensors load on the CPU whatever device they were saved from (a cache written on a GPU machine is
    read on a CPU one), and memory-mapped where the file allows it (torch.save's zip format): the pages
    come from the file as they are read, and the workers of a study on one machine share them in the
    page cache instead of each holding its own copy. Mapped copy-on-write: writing to a tensor never
    changes the file.
    """
    import zipfile

    import torch

    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


def load_json(path: Path) -> Any | None:
    return json.loads(path.read_text()) if path.is_file() else None


def compute_once(
    path: Path,
    load: Callable[[Path], Any | None],
    save: Callable[[Any, Path], Any],
    compute: Callable[[], Any],
    log: Callable[[str], None] | None = None,
) -> Any:
    """The value stored at ``path`` (``load`` returns None when there is none), else ``compute()`` saved there.

    Several processes may share one cache directory (workers of one study, on one machine or a shared
    disk): a lock file beside ``path`` lets the first compute while the others wait, then read its
    result, instead of each computing the teacher's outputs again. The lock is the operating system's
    (``flock`` on Linux and macOS), so a worker killed while computing releases it. ``save`` must write
    atomically: readers that skip the lock (a value already there) never see half a file. What killed
    writers left in the directory (a half-written cache as large as the whole) is removed first.
    """
    from filelock import FileLock

    clean_leftovers(path.parent, log=log)
    value = load(path)
    if value is not None:
        if log:
            log(f"cache: reused {path}")
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        value = load(path)  # another worker may have written it while this one waited
        if value is None:
            value = compute()
            save(value, path)
            if log:
                log(f"cache: computed {path}")
        elif log:
            log(f"cache: reused {path} (computed by another worker while this one waited)")
    return value


def file_once(
    path: Path,
    load: Callable[[Path], Any | None],
    write: Callable[[str], Any],
    log: Callable[[str], None] | None = None,
) -> Any:
    """``load(path)``, once ``write(tmp)`` has made the file (under ``compute_once``'s lock): for caches made
    as files (an Arrow file ``datasets`` writes, a tensor mapped to its file) rather than saved from a
    value. ``write`` fills a temporary beside ``path`` that is renamed into place whole (``atomic_write``)."""
    return compute_once(path, load, lambda _value, _path: None, lambda: load(atomic_write(path, write)), log)


def writable(directory: Path) -> bool:
    """Whether ``directory`` exists writable, or could be created: checked without creating anything."""
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


def replaceable(directory: Path, marker: str) -> bool:
    """Whether writing ``directory`` may replace what is there: nothing, an empty directory, or an
    earlier output of ours (it holds ``marker``). Anything else is the user's and is never deleted.

    A ``directory`` that a killed ``swap_into_place`` had set aside is put back first, so the answer (and
    whatever reads it next, e.g. a teacher reused when trained from the same inputs) is about it."""
    clean_leftovers(directory.parent)
    if not directory.exists():
        return True
    return directory.is_dir() and (not any(directory.iterdir()) or (directory / marker).is_file())


def temporary_sibling(destination: Path) -> Path:
    """A fresh, uniquely named directory beside ``destination`` to build it in before ``swap_into_place``;
    what killed writers left beside it is removed first."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(destination.parent)
    tmp = Path(tempfile.mkdtemp(dir=destination.parent, prefix=temporary_prefix(destination), suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the finished directory is an ordinary one
    return tmp


def swap_into_place(tmp: Path, destination: Path, marker: str, what: str) -> None:
    """Replace ``destination`` with the finished ``tmp`` directory: readers see the old one, then (for the
    moment between two renames) none, then the new one, never half of either; a destination that is not
    an earlier output of ours is refused, not deleted.

    The old directory is renamed aside before the new one is renamed in, and deleted only once the new
    one is in place: a process killed in between leaves the old one whole under its aside name, and
    the next ``replaceable`` or ``temporary_sibling`` beside it puts it back (see ``clean_leftovers``).
    """
    if not replaceable(destination, marker):  # checked before compute too
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(f"{destination} holds files that are not {what}; choose an empty or new directory")
    aside = move_aside(destination)
    try:
        tmp.rename(destination)
    except BaseException:
        if aside is not None:
            aside.rename(destination)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def move_aside(destination: Path) -> Path | None:
    """Rename ``destination`` to a fresh aside name beside it; that name, or None when there was nothing."""
    aside = aside_path(destination)
    try:
        destination.rename(aside)
    except FileNotFoundError:
        return None
    return aside
