"""Causal language models, the second implementation of the task seam (DistilGPT2's path).

Examples are fixed blocks of the teacher's tokens; the teacher's targets are its top-k next-token
log-probabilities per position (cached once per study); the loss is Hinton's on every next-token
distribution over real tokens; quality is perplexity on the validation blocks (lower is better);
latency is batch-1 decoding per new token with the KV cache, after a prompt (prefill reported too).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from autodistill.config.schema import LatencySpec, SpaceConfig
from autodistill.data.sources import DataError
from autodistill.distill.loss import LossParts, topk_distillation_loss
from autodistill.measure.decode import decode_latency, positions_needed
from autodistill.measure.latency import Latency
from autodistill.store.caches import teacher_fingerprint
from autodistill.tasks.base import TaskData, TaskInputs
from autodistill.tasks.card import CardText, model_card
from autodistill.tasks.causal_lm.data import LmData, inspect_lm_text, load_lm_text, tensor_hash
from autodistill.tasks.causal_lm.evaluation import generate_sample, perplexity
from autodistill.tasks.causal_lm.heads import (
    HeadlessOutputs,
    chunk_positions,
    headless,
    logits_of,
    position_rows,
)
from autodistill.tasks.causal_lm.topk import TopkBatches, teacher_topk
from autodistill.tasks.teachers import TeacherError, inference_dtype, load_pretrained, read_teacher_config
from autodistill.util.devices import half_precision_on

SAMPLE_PROMPT = "The"  # a neutral start: the sample shows what the student writes on its own
SAMPLE_TOKENS = 40
CARD = CardText(
    pipeline_tag="text-generation",
    loss="A language model distilled by autodistill with the Hinton loss on every next-token distribution,\n"
    "(1-λ)·CE(next token) + λ·T²·KL(teacher_T ‖ student_T), against the teacher's top-k targets.",
    usage="from transformers import AutoModelForCausalLM, AutoTokenizer\n"
    'model = AutoModelForCausalLM.from_pretrained("PATH")\n'
    'tokenizer = AutoTokenizer.from_pretrained("PATH")\n'
    'ids = model.generate(**tokenizer("The", return_tensors="pt"), max_new_tokens=40)\n'
    "print(tokenizer.decode(ids[0]))",
)


def context_length(config: Any) -> int | None:
    """How many positions the teacher (and so its students) can attend to."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return None


class CausalLM:
    """Distil a ``*ForCausalLM`` teacher (Llama family, GPT-2); judged by validation perplexity."""

    name = "causal-lm"
    metric = "perplexity"
    direction: Literal["maximize", "minimize"] = "minimize"
    exports_onnx = False  # a decoder with its KV cache is not the single-pass graph export_onnx checks

    def __init__(self, chunk_tokens: int | None = None) -> None:
        self.chunk_tokens = chunk_tokens  # positions whose logits are held at once (``heads``)

    @classmethod
    def for_space(cls, space: SpaceConfig) -> CausalLM:
        return cls(space.train.chunk_tokens)

    def auto_class(self) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def inspect(
        self, space: SpaceConfig, cache_dir: Path | None = None
    ) -> tuple[TaskInputs | None, list[str]]:
        from transformers import AutoTokenizer

        problems: list[str] = []
        config, tokenizer = None, None
        try:
            config = read_teacher_config(
                space.teacher,
                space.trust_remote_code,
                space.allow_pickle,
                ("ForCausalLM", "LMHeadModel"),  # GPT-2's class is GPT2LMHeadModel
                "task: causal-lm distils a causal language model (for a classifier, leave task unset); "
                "convert a GGUF or hub checkpoint with `autodistill lm-teacher`",
            )
            tokenizer = AutoTokenizer.from_pretrained(
                str(space.teacher), trust_remote_code=space.trust_remote_code
            )
        except TeacherError as exc:
            problems.append(str(exc))
        if config is not None:
            problems += _fits_the_context(space, config)
        if space.latency.backend != "torch":
            problems.append(
                "latency.backend: causal-lm decoding latency is measured in torch (KV cache); set it to torch"
            )
        facts = None
        try:
            facts = inspect_lm_text(space.dataset, space.train.max_length, tokenizer, cache_dir)
        except (DataError, ValueError) as exc:
            problems.append(str(exc).splitlines()[0])
        if problems or config is None or facts is None:
            return None, problems
        held = round(facts.blocks * space.dataset.holdout_fraction)
        summary = {
            "teacher": f"{space.teacher} ({config.model_type}, vocabulary {config.vocab_size})",
            "dataset": facts.summary,
        }
        return (
            TaskInputs(
                teacher_config=config,
                examples=facts,
                train_examples=min(space.train_examples(), facts.blocks - held),
                fingerprint=facts.corpus.fingerprint,
                facts=facts.facts,
                summary=summary,
            ),
            [],
        )

    def load_teacher(self, space: SpaceConfig, device: str = "cpu") -> tuple[Any, Any]:
        """In bfloat16 when its checkpoint is and ``device`` runs half precision (``inference_dtype``)."""
        assert space.teacher is not None  # inspect checked it
        dtype = inference_dtype(space.teacher, space.trust_remote_code, half_precision_on(device))
        return load_pretrained(
            self.auto_class(), space.teacher, space.trust_remote_code, space.allow_pickle, dtype
        )

    def prepare(
        self,
        space: SpaceConfig,
        inputs: TaskInputs,
        teacher: Any,
        tokenizer: Any,
        cache_dir: Path,
        device: str,
        log: Callable[[str], None],
        transfer: bool = False,  # no transfer set: the teacher already gives a target at every token
    ) -> TaskData:
        data: LmData = load_lm_text(
            space.dataset, tokenizer, space.train.max_length, space.train_examples(), cache_dir
        )
        key = [teacher_fingerprint(str(space.teacher)), data.fingerprint]
        targets = teacher_topk(
            teacher,
            data.train,
            space.distill.top_k,
            space.train.eval_batch_size,
            device,
            cache_dir,
            key,
            log,
            self.chunk_tokens,
        )
        return TaskData(
            train=TopkBatches(data.train, targets),
            train_tokens=data.train,
            validation=data.validation,
            test=data.test,
            key=[*key, space.train.max_length],
            evaluation_key=[key[0], tensor_hash(data.validation.input_ids, data.test.input_ids)],
        )

    def forward(self, model: Any, batch: dict[str, Any], output_hidden_states: bool) -> Any:
        """The student without its output layer (``heads.headless``): the loss applies it in chunks."""
        return headless(model, batch["input_ids"], batch["attention_mask"], output_hidden_states)

    def loss(self, outputs: Any, batch: dict[str, Any], lam: float, temperature: float) -> LossParts:
        chunked = isinstance(outputs, HeadlessOutputs)
        return topk_distillation_loss(
            position_rows(outputs),
            batch["topk_indices"],
            batch["topk_values"],
            batch["topk_rest"],
            batch["labels"],
            batch["attention_mask"],
            lam,
            temperature,
            batch["topk_tail_entropy"],  # the tail as e^H tokens: far closer than one token at T > 1
            head=(lambda rows: logits_of(outputs, rows)) if chunked else None,
            chunk=chunk_positions(outputs.head.weight.shape[0], self.chunk_tokens) if chunked else None,
        )

    def measure_latency(self, model: Any, spec: LatencySpec) -> Latency:
        return decode_latency(model, spec)

    def evaluate(self, model: Any, data: Any, batch_size: int, device: str) -> float:
        return perplexity(model, data, batch_size, device, self.chunk_tokens)

    def samples(self, model: Any, tokenizer: Any) -> dict[str, str]:
        """A greedy continuation of a short prompt: what the student writes, for MLflow and the report."""
        return {"sample.txt": generate_sample(model, tokenizer, SAMPLE_PROMPT, SAMPLE_TOKENS)}

    def model_card(
        self, title: str, settings: dict[str, Any], metrics: dict[str, Any], facts: dict[str, Any]
    ) -> str:
        return model_card(CARD, title, settings, metrics, facts)


def _fits_the_context(space: SpaceConfig, config: Any) -> list[str]:
    """Blocks and the latency measurement's tokens must fit the teacher's positions."""
    limit = context_length(config)
    if not limit:
        return []
    problems = []
    if space.train.max_length > limit:
        problems.append(
            f"train.max_length: blocks of {space.train.max_length} tokens exceed the teacher's context of "
            f"{limit}; lower it"
        )
    needed = positions_needed(space.latency)
    if needed > limit:
        problems.append(
            f"latency.sequence_length: a prompt of {space.latency.sequence_length} tokens plus the decoded ones "
            f"({needed} in all) exceeds the teacher's context of {limit}; lower it, or latency.repeats"
        )
    return problems
