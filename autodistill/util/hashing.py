"""Short content hashes for cache keys and fingerprints."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def short_hash(*parts: Any) -> str:
    """16 hex digits of the SHA-256 of ``parts`` as canonical JSON (keys sorted).

    Args:
        parts: JSON-serialisable values; one part is hashed as itself, several as a list.
    """
    value = parts[0] if len(parts) == 1 else list(parts)
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
