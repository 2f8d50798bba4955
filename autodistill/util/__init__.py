"""Small helpers every floor shares; nothing here imports the rest of autodistill."""

from autodistill.util.errors import first_line
from autodistill.util.files import (
    atomic_json_save,
    atomic_text_save,
    atomic_torch_save,
    atomic_write,
    load_json,
    load_torch,
    replaceable,
    swap_into_place,
    temporary_sibling,
    writable,
)
from autodistill.util.hashing import short_hash
from autodistill.util.paths import looks_local

__all__ = [
    "atomic_json_save",
    "atomic_text_save",
    "atomic_torch_save",
    "atomic_write",
    "first_line",
    "load_json",
    "load_torch",
    "looks_local",
    "replaceable",
    "short_hash",
    "swap_into_place",
    "temporary_sibling",
    "writable",
]
