"""ONNX: export a model (the graph ``autodistill export --onnx`` ships, checked against torch) and run
it in onnxruntime for the deployment latency."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch


def export_onnx(model: Any, path: Path, sequence_length: int) -> float:
    """Write ``model`` as ONNX (dynamic batch and sequence) and return the largest |ONNX - torch| logit gap."""
    import numpy as np
    import onnxruntime

    model = model.eval().to("cpu")
    vocab = model.config.vocab_size
    ids = torch.randint(
        min(1000, vocab - 1), vocab, (2, sequence_length), generator=torch.Generator().manual_seed(0)
    )
    mask = torch.ones_like(ids)
    mask[1, sequence_length // 2 :] = 0  # a padded row checks the mask path too
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes=({0: "batch", 1: "sequence"}, {0: "batch", 1: "sequence"}),
            dynamo=True,
            external_data=False,  # one self-contained file
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check_ids = ids[:, : max(2, sequence_length - 3)]
    check_mask = mask[:, : check_ids.shape[1]]
    onnx_logits = session.run(None, {"input_ids": check_ids.numpy(), "attention_mask": check_mask.numpy()})[0]
    with torch.no_grad():
        torch_logits = model(input_ids=check_ids, attention_mask=check_mask).logits.numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


@contextlib.contextmanager
def _exporter_quiet() -> Iterator[None]:
    """The ONNX exporter and its optimiser log warnings (missing torchvision, failed constant folds)
    that say nothing about the exported graph; ``export_onnx`` already mutes its warnings and stdout."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def onnxruntime_session(path: Path, threads: int) -> Any:
    """A CPU session pinned to ``threads`` intra-op threads and one inter-op thread, errors-only logging."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnxruntime_run(model: Any, inputs: dict[str, torch.Tensor], threads: int) -> Callable[[], object]:
    """One inference of ``model``'s ONNX export (written to a temporary directory) in onnxruntime."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with _exporter_quiet():
            export_onnx(model, path, inputs["input_ids"].shape[1])
        session = onnxruntime_session(path, threads)
    feed = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
    return lambda: session.run(None, feed)
