"""Causal language models: plain text cut into token blocks, the teacher's top-k next-token targets
(cached), next-token distillation against them, perplexity."""

from autodistill.tasks.causal_lm.data import (
    Blocks,
    Corpus,
    LmData,
    TextFacts,
    inspect_lm_text,
    load_lm_text,
    read_corpus,
)
from autodistill.tasks.causal_lm.evaluation import generate_sample, perplexity
from autodistill.tasks.causal_lm.topk import TopkBatches, TopkTargets, teacher_topk, topk_from_logits

__all__ = [
    "Blocks",
    "Corpus",
    "LmData",
    "TextFacts",
    "TopkBatches",
    "TopkTargets",
    "generate_sample",
    "inspect_lm_text",
    "load_lm_text",
    "perplexity",
    "read_corpus",
    "teacher_topk",
    "topk_from_logits",
]
