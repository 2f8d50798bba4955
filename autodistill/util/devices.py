"""Where models run: CUDA when present, the CPU otherwise; and how a job uses a GPU.

A worker started by ``autodistill search --workers N`` sees only the GPU it was given
(``CUDA_VISIBLE_DEVICES``), so ``cuda`` is that GPU in every worker.

On the CPU every helper here is a no-op: a CPU run computes exactly what it did before they existed.
On CUDA, ``configure_device`` (once per job) turns on TF32 matrix products and, on request, deterministic
algorithms; ``autocast`` runs forward passes in bfloat16 where the GPU supports it; ``to_device`` copies
batches through pinned memory without blocking the host.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# cuBLAS reads this when it creates its workspace, at the process's first matrix product on the GPU:
# set any later, it has no effect and cuBLAS stays non-deterministic. ":4096:8" is NVIDIA's documented
# value for reproducible results (8 buffers of 4 MiB per stream).
CUBLAS_DETERMINISTIC = ":4096:8"

# Whether ``autocast`` runs forward passes in bfloat16, as the job's ``train.mixed_precision`` says;
# float32 until a job configures it (``autodistill teacher`` fine-tunes in float32, as it always did).
_mixed_precision = False


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def limit_gpu_memory(fraction: float | None) -> None:
    """Cap this process's share of its GPU's memory (``--gpu-memory-fraction``), so that several workers
    sharing one GPU cannot starve each other; nothing without a GPU or a fraction."""
    import torch

    if fraction is not None and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(fraction)


def is_cuda(device: str | torch.device) -> bool:
    import torch

    return torch.device(device).type == "cuda"


def configure_device(device: str, deterministic: bool = False, mixed_precision: bool = True) -> None:
    """Set up this process for a job on ``device`` (``train.deterministic``, ``train.mixed_precision``).

    Call it before any CUDA work: ``prepare_job`` does, before the teacher is loaded.

    - ``deterministic``: the same results run after run, at some cost in speed (some GPU kernels have a
      slower deterministic version). ``torch.use_deterministic_algorithms`` warns, instead of raising,
      for an operation that has none; cuDNN stops choosing kernels by benchmark; and
      ``CUBLAS_WORKSPACE_CONFIG`` is set, which only works before cuBLAS starts (the first matrix
      product on the GPU), so a process that already ran one keeps its non-deterministic cuBLAS.
    - ``mixed_precision``: forward passes under ``autocast`` run in bfloat16 on a GPU that supports it.
    - On CUDA, float32 matrix products use TF32 tensor cores (10-bit mantissa products, float32 sums):
      several times faster on Ampere and later, well within what training noise already varies.
    """
    import torch

    global _mixed_precision
    _mixed_precision = mixed_precision
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False  # a benchmark may pick a different kernel from run to run
    if is_cuda(device):  # the CPU's float32 products stay exact
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


@functools.cache
def _bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def half_precision_on(device: str) -> bool:
    """Whether the job runs half-precision (bfloat16) passes on ``device``: a GPU that supports bfloat16,
    with ``train.mixed_precision`` on. Never on the CPU."""
    return _mixed_precision and is_cuda(device) and _bf16_supported()


def autocast(device: str, enabled: bool | None = None) -> contextlib.AbstractContextManager[Any]:
    """A context in which forward passes on ``device`` run in bfloat16 (weights stay float32), or a
    no-op: always on the CPU, and on CUDA when mixed precision is off (``enabled``, by default as the job
    configured it) or the GPU lacks bfloat16.

    A float16-only GPU (before Ampere) stays in float32: float16's narrow range would need a gradient
    scaler for the backward pass, and we keep the loop simple. Outputs may be bfloat16: cast them to
    float32 before a loss (the losses are computed in float32, outside this context).
    """
    import torch

    on = _mixed_precision if enabled is None else enabled
    if not (on and is_cuda(device) and _bf16_supported()):
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


def move(tensor: torch.Tensor, device: str) -> torch.Tensor:
    """``tensor`` on ``device``. From the CPU to CUDA it goes through pinned (page-locked) memory with a
    non-blocking copy: the host queues the copy and goes on instead of waiting for it; on the CPU it is
    the plain (no-op) ``.to``."""
    if is_cuda(device) and tensor.device.type == "cpu":
        # The pinned buffer is torch's caching host allocator's: it is not reused before the copy is done.
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def to_device(tensors: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    """Each tensor of a batch ``move``d to ``device``."""
    return {name: move(tensor, device) for name, tensor in tensors.items()}
