"""The teacher's hidden states for the hidden-state loss: cached once per study, or computed per step.

Caching runs the teacher once over the trial-visible training examples and keeps every layer's output
for the real tokens only (no padding), in float16, ragged: [tokens, layers, width] plus each example's
offset, for the layers some student can be matched to. A step then gathers its batch from memory instead
of running the teacher forward (one indexing operation, not a loop over the batch's rows). A cache
within ``CACHE_LIMIT_BYTES`` is computed in memory and saved whole; a larger one (full-length training on
a large dataset) is written as it is computed straight into a raw float16 file on disk, mapped, and read
memory-mapped, so memory never holds more of it than the pages in use, and the workers on one machine
share those pages. Only when the disk lacks the room does the teacher run live instead, which costs a
teacher forward pass per step (and keeps the teacher on the training device).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from autodistill.util.devices import autocast, move, to_device
from autodistill.util.files import atomic_torch_save, compute_once, file_once, load_torch
from autodistill.util.hashing import short_hash

CACHE_LIMIT_BYTES = 4 * 2**30  # computed in memory up to this; past it, written to a mapped file
DISK_MARGIN_BYTES = 2**30  # left free on the cache's disk by a mapped cache


class TokenBatches(Protocol):
    """Tokenised examples: each one's length in real tokens, and right-padded batches by index."""

    lengths: torch.Tensor  # [examples]

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]: ...


@dataclass
class TeacherStates:
    """Per-layer teacher hidden states for batches of training examples (layer 0 = first block's output)."""

    data: TokenBatches
    layers: list[int]  # teacher layers held in the cache (or computable live)
    cached: torch.Tensor | None = None  # [tokens, len(layers), width] float16
    offsets: torch.Tensor | None = None  # [examples + 1]
    teacher: Any = None  # used when there is no cache

    @property
    def source(self) -> str:
        return "cache" if self.cached is not None else "live"

    def batch(self, index: torch.Tensor, layers: list[int], device: str) -> list[torch.Tensor]:
        """For each of ``layers``, [batch, longest example, width] states of the examples ``index``."""
        if self.cached is None:
            return self._live(index, layers, device)
        assert self.offsets is not None
        missing = set(layers) - set(self.layers)
        if missing:
            raise ValueError(
                f"teacher layers {sorted(missing)} are not in the hidden-state cache ({self.layers})"
            )
        columns = torch.tensor([self.layers.index(layer) for layer in layers])
        rows, real = token_rows(self.offsets, self.data.lengths, index)
        out = torch.zeros(*real.shape, len(layers), self.cached.shape[-1], dtype=self.cached.dtype)
        out[real] = self.cached[rows[real][:, None], columns[None, :]]  # zeros stay at the padding
        out = move(out, device).float()  # float16 over the bus (half the bytes), float32 for the loss
        return [out[:, :, k] for k in range(len(layers))]

    @torch.no_grad()
    def _live(self, index: torch.Tensor, layers: list[int], device: str) -> list[torch.Tensor]:
        batch = to_device(self.data.batch(index), device)
        self.teacher.to(device).eval()  # a no-op after the first step: a live teacher stays there
        with autocast(device):
            states = self.teacher(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_hidden_states=True,
            ).hidden_states
        return [states[layer + 1].float() for layer in layers]  # states[0] is the embedding output


def cache_bytes(data: TokenBatches, layers: int, width: int) -> int:
    return int(data.lengths.sum()) * layers * width * 2  # float16


def token_rows(
    offsets: torch.Tensor, lengths: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the tokens of the examples ``index`` lie in the ragged cache, as a padded batch.

    Args:
        offsets: [examples + 1] each example's first row in the cache (the last: the total).
        lengths: [examples] each example's real tokens.
        index: [batch] the examples, in batch order.

    Returns:
        (rows [batch, longest], real [batch, longest] bool): ``rows[b, t]`` is the cache row of token t
        of example ``index[b]``, meaningful where ``real`` (t < its length); padding is False.
    """
    lengths = lengths[index]
    steps = torch.arange(int(lengths.max()))
    return offsets[index][:, None] + steps[None, :], steps[None, :] < lengths[:, None]


def example_offsets(data: TokenBatches) -> torch.Tensor:
    """[examples + 1]: each example's first row in the ragged cache, then the total."""
    offsets = torch.zeros(len(data) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(data.lengths, 0)
    return offsets


@torch.no_grad()
def compute_states(
    teacher: Any,
    data: TokenBatches,
    layers: list[int],
    batch_size: int,
    device: str,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``layers``' outputs for every real token of ``data``: ([tokens, len(layers), width] fp16, offsets),
    written into ``out`` when given (e.g. a tensor mapped to a file)."""
    config = teacher.config
    offsets = example_offsets(data)
    shape = (int(offsets[-1]), len(layers), config.hidden_size)
    states = out if out is not None else torch.empty(*shape, dtype=torch.float16)
    teacher.eval().to(device)
    order = torch.argsort(data.lengths, descending=True)  # similar lengths together: little padding
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        batch = to_device(data.batch(index), device)
        with autocast(device):
            hidden = teacher(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                output_hidden_states=True,
            ).hidden_states
        # [batch, tokens, layers, width], made float16 before it leaves the device: half the bytes
        stacked = torch.stack([hidden[layer + 1] for layer in layers], dim=2).to(torch.float16).cpu()
        rows, real = token_rows(offsets, data.lengths, index)
        states[rows[real]] = stacked[:, : real.shape[1]][real]  # the real tokens only, in one scatter
    return states, offsets


def teacher_states(
    teacher: Any,
    data: TokenBatches,
    layers: list[int],
    batch_size: int,
    device: str,
    cache_dir: Path,
    key_parts: list[Any],
    log: Any,
) -> TeacherStates:
    """Cached states (computed once per key, stored atomically): in memory within ``CACHE_LIMIT_BYTES``,
    else in a memory-mapped file (``mapped_states``); a provider that runs ``teacher`` per batch only
    when the disk lacks the room for that file."""
    size = cache_bytes(data, len(layers), teacher.config.hidden_size)
    if size > CACHE_LIMIT_BYTES:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"teacher-states-{short_hash([*key_parts, layers])}.f16"
        if path.is_file() or shutil.disk_usage(cache_dir).free > size + DISK_MARGIN_BYTES:
            states = mapped_states(teacher, data, layers, batch_size, device, path, log)
            return TeacherStates(data=data, layers=layers, cached=states, offsets=example_offsets(data))
        log(
            f"teacher: hidden states would take {size / 1e9:.1f} GB, more than {cache_dir}'s disk has free; "
            "computing them at each step instead"
        )
        return TeacherStates(data=data, layers=layers, teacher=teacher)

    def compute() -> dict[str, torch.Tensor]:
        log(
            f"teacher: computing hidden states of layers {layers} on {len(data)} training examples "
            f"({size / 1e9:.2f} GB, once, cached)"
        )
        states, offsets = compute_states(teacher, data, layers, batch_size, device)
        return {"states": states, "offsets": offsets}

    path = cache_dir / f"teacher-states-{short_hash([*key_parts, layers])}.pt"
    cached = compute_once(path, load_torch, atomic_torch_save, compute, log)
    return TeacherStates(data=data, layers=layers, cached=cached["states"], offsets=cached["offsets"])


def mapped_states(
    teacher: Any, data: TokenBatches, layers: list[int], batch_size: int, device: str, path: Path, log: Any
) -> torch.Tensor:
    """The states as a raw float16 file at ``path``, read memory-mapped ([tokens, len(layers), width]).

    Computed once per key, under ``compute_once``'s lock: written batch by batch into a temporary file
    beside ``path`` through a shared mapping (nothing but the pages in use is held in memory), then
    renamed into place whole. Read back through a private mapping: pages come from the page cache, which
    the workers on one machine share, and a write to the tensor would never reach the file.
    """
    shape = (int(data.lengths.sum()), len(layers), teacher.config.hidden_size)
    count = math.prod(shape)

    def load(p: Path) -> torch.Tensor | None:
        if not p.is_file() or p.stat().st_size != count * 2:
            return None
        return torch.from_file(str(p), shared=False, size=count, dtype=torch.float16).view(shape)

    def write(tmp: str) -> None:
        log(
            f"teacher: computing hidden states of layers {layers} on {len(data)} training examples "
            f"({count * 2 / 1e9:.2f} GB, once, into a memory-mapped file)"
        )
        os.truncate(tmp, count * 2)
        out = torch.from_file(tmp, shared=True, size=count, dtype=torch.float16).view(shape)
        compute_states(teacher, data, layers, batch_size, device, out=out)

    return file_once(path, load, write, log)
