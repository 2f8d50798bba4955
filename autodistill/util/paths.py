"""Telling a local path from a hub id."""

from __future__ import annotations

from pathlib import Path


def looks_local(ref: str) -> bool:
    """Whether ``ref`` names a local file or directory rather than a hub id: it exists, or it is
    written as a path (``./x``, ``/x``, ``~/x``), so a missing one is reported as missing, not looked up."""
    return Path(ref).exists() or ref.startswith((".", "/", "~"))
