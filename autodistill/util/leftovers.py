"""What a killed writer leaves beside the files it was replacing, told apart from what a live one is writing.

Every temporary file or directory we write beside a destination is named after its writer:
``.NAME.w<pid>-<place>.<random>.tmp``, and a directory set aside while another replaces it (see
``swap_into_place``) ``.NAME.w<pid>-<place>.<random>.aside``. A SIGKILL between creating one and renaming
it leaves it there, as large as the cache or model it held; ``clean_leftovers`` removes those whose writer
is gone, and puts an aside directory back when nothing replaced it.

Several processes share a cache directory (the workers of a study, on one machine or many), so a leftover
is removed only when its writer is known to be gone; a live writer's file is never touched:

- written here (this host, this pid namespace): its writer is gone when its process id is not running.
- written elsewhere (another machine on a shared disk, another container), or by a process id that is
  running again for another program: its process cannot be looked up from here, so it is gone only once
  nothing in it changed for ``STALE_AFTER``. Our writers create a temporary only when its content is
  ready and write it at once (computed first, then saved), so a live writer's temporary changes within
  minutes; a day also covers clocks that disagree between machines.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

STALE_AFTER = 24 * 3600.0  # seconds without a change before another place's leftover counts as dead

LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.w(?P<pid>\d{1,9})-(?P<place>[0-9a-f]{8})\.[^.]+\.(?P<kind>tmp|aside)$"
)


@functools.cache
def this_place() -> str:
    """Eight hex digits naming where this process's id means something: the host, its boot and its pid
    namespace.

    The host name alone is not enough: containers that share it (``--uts=host``, ``--network host``)
    each number their processes from 1, and a pid there says nothing about a pid here; and machines
    may share a name (and the first pid namespace's number), but not the kernel's boot id.
    """
    import hashlib

    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # not Linux: one namespace per host
        namespace = ""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}\0{boot}".encode()).hexdigest()[:8]


def writer_tag() -> str:
    return f"w{os.getpid()}-{this_place()}"


def temporary_prefix(destination: Path) -> str:
    """The start of a temporary's name beside ``destination`` (``mkstemp`` and ``mkdtemp`` add the rest)."""
    return f".{destination.name}.{writer_tag()}."


def aside_path(destination: Path) -> Path:
    """A fresh name beside ``destination`` to move it to while a new one takes its place."""
    return destination.with_name(f".{destination.name}.{writer_tag()}.{uuid.uuid4().hex[:8]}.aside")


def process_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def last_change(path: Path) -> float:
    """The latest status change (``st_ctime``: writes, renames) of ``path`` or anything under it."""
    times = [path.lstat().st_ctime]
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            times += [os.lstat(os.path.join(root, n)).st_ctime for n in dirs + files]
    return max(times)


def writer_gone(path: Path, pid: int, place: str, now: float) -> bool:
    """Whether the writer of ``path`` is gone: its process is not running here, or nothing in it changed
    for ``STALE_AFTER`` (another place's writer, or a process id reused after a reboot)."""
    if place == this_place() and not process_running(pid):
        return True
    return now - last_change(path) > STALE_AFTER


def clean_leftovers(
    directory: Path, now: float | None = None, log: Callable[[str], None] | None = None
) -> int:
    """Remove the temporaries in ``directory`` whose writer is gone, and settle its aside directories:
    one whose destination is missing (killed between the two renames of a swap) is put back, the newest
    first; one whose destination is there is an old copy, removed. Returns how many were removed or put back.

    ``now`` (default the clock) is what ``STALE_AFTER`` is counted from. Safe while other processes
    write, swap or clean in ``directory``: what vanishes meanwhile is skipped.
    """
    now = time.time() if now is None else now
    try:
        entries = [(p, LEFTOVER.match(p.name)) for p in directory.iterdir() if p.name.startswith(".")]
    except OSError:  # no such directory yet, or not readable: nothing of ours to clean
        return 0
    dead = []
    for path, match in entries:
        try:
            if match and writer_gone(path, int(match["pid"]), match["place"], now):
                dead.append((path, match))
        except OSError:  # removed by another cleaner meanwhile
            continue
    settled = 0
    for path, match in sorted(dead, key=lambda d: _changed(d[0]), reverse=True):  # newest aside first
        destination = directory / match["name"]
        if match["kind"] == "aside" and not destination.exists():
            settled += _put_back(path, destination)
        else:
            _remove(path)
            settled += 1
    if settled and log:
        log(f"cleaned {settled} temporary file(s) or folder(s) left by a killed writer in {directory}")
    return settled


def _changed(path: Path) -> float:
    try:
        return path.lstat().st_ctime
    except OSError:
        return 0.0


def _put_back(aside: Path, destination: Path) -> int:
    try:
        aside.rename(destination)
    except OSError:  # another cleaner put one back first; this older copy goes on the next start
        return 0
    return 1


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
