"""Measuring a model like a benchmark: size, batch-1 CPU latency (torch eager or onnxruntime), memory."""

from autodistill.measure.cost import measure_cost
from autodistill.measure.latency import Latency, latency, measure_latency, onnxruntime_latency
from autodistill.measure.onnx import export_onnx
from autodistill.measure.size import Size, model_size

__all__ = [
    "Latency",
    "Size",
    "export_onnx",
    "latency",
    "measure_cost",
    "measure_latency",
    "model_size",
    "onnxruntime_latency",
]
