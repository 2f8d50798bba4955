"""The peer a user would write instead of autodistill: Hugging Face's Trainer with a distillation loss,
searched by ``Trainer.hyperparameter_search(backend="optuna")`` over the space of ``search_spaces/bert.yaml``.

What it does, as a user would write it by hand:

- a ``Trainer`` subclass whose ``compute_loss`` runs the teacher on every batch (no cached logits) and
  applies Hinton's loss ``(1-λ)·CE + λ·T²·KL``;
- ``model_init(trial)`` builds the student from the teacher's config with the trial's depth and width
  (heads = width / head_size, feed-forward = ffn_ratio × width, the space's rules). Initialisation:
  **at the teacher's width the embeddings, evenly spaced layers (ending at the top one) and the head are
  copied from the teacher (DistilBERT's recipe); narrower students start from random init**, since
  whole layers cannot be copied into them. Nothing else (no hidden-state loss, no weight selection);
- ``hyperparameter_search(direction=["maximize", "minimize", "minimize"], hp_space=..., n_trials=<large>,
  timeout=<budget>)`` with a seeded ``TPESampler`` and a persistent SQLite storage (the kwargs go to
  ``optuna.create_study``), over depth, width, λ, T and learning rate with the ranges of the space
  (read from it, so they cannot drift apart; init and the hidden-state weight are autodistill's own).

Made comparable with autodistill, not as a user would: the same train subset (``train.steps ×
train.batch_size`` seeded examples), the same validation examples and test examples
(``autodistill.tasks.classification.data.load_text_data`` with the space's DatasetSpec), the same
steps, batch size, warm-up share, weight decay, gradient clipping, and the objectives measured with
autodistill's own ``measure_cost`` (the space's LatencySpec). Each trial is also scored on the test
examples (without the teacher; nothing reads it during the search) and the score is stored on the study
as autodistill does (user attribute ``test_metrics:<trial number>`` → ``{"test_accuracy": x}``).
The budget, like autodistill's ``--timeout``, starts once the teacher and data are loaded; a trial
running at the deadline is finished.

    .venv/bin/python benchmarks/hf_trainer_peer.py --out DIR --budget-seconds 180 --seed 0 \
        [--teacher ...] [--dataset ...] [--set train.steps=20]
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from autodistill.config import Dist, SpaceConfig, load_space
from autodistill.measure import measure_cost
from autodistill.tasks.classification.data import Split, load_text_data

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SPACE = ROOT / "search_spaces" / "bert.yaml"
STUDY = "hf-trainer"
DIRECTIONS = ["maximize", "minimize", "minimize"]  # accuracy, latency_ms, size_mb
TEST_SCORES_PREFIX = "test_metrics:"  # as autodistill records them (autodistill.store.studies)


@dataclass
class DistillationArguments(TrainingArguments):
    """TrainingArguments with the distillation settings, so that hp_space can set them like any other."""

    distill_lambda: float = 0.5
    temperature: float = 2.0
    depth: int = 2
    width: int = 128


class Examples(torch.utils.data.Dataset):
    """Tokenised examples (padding is left to the collator)."""

    def __init__(self, split: Split, tokenizer: Any, max_length: int, with_labels: bool = True):
        enc = tokenizer(split.texts, truncation=True, max_length=max_length)
        self.items = [
            {"input_ids": ids, "attention_mask": mask, **({"labels": label} if with_labels else {})}
            for ids, mask, label in zip(enc["input_ids"], enc["attention_mask"], split.labels, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class DistillationTrainer(Trainer):
    """Hinton's loss against a teacher that runs on every batch; objectives measured after evaluation."""

    def __init__(
        self, *args: Any, teacher: Any, space: SpaceConfig, test: Examples, test_labels: list[int], **kw: Any
    ):
        super().__init__(*args, **kw)
        self.teacher = teacher.eval().to(self.args.device)
        self.space, self.test, self.test_labels = space, test, np.array(test_labels)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        labels = inputs["labels"]
        features = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        outputs = model(**features)
        with torch.no_grad():
            teacher_logits = self.teacher(**features).logits
        args = cast(DistillationArguments, self.args)
        lam, t = args.distill_lambda, args.temperature
        hard = F.cross_entropy(outputs.logits, labels)
        soft = F.kl_div(
            F.log_softmax(outputs.logits / t, dim=-1),
            F.log_softmax(teacher_logits / t, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        loss = (1 - lam) * hard + lam * t * t * soft
        return (loss, outputs) if return_outputs else loss

    def evaluate(self, *pos: Any, **kwargs: Any) -> dict[str, float]:
        metrics = super().evaluate(*pos, **kwargs)
        cost, _ = measure_cost(self.model, self.space.latency)  # autodistill's own measurement
        metrics["eval_latency_ms"] = cost["latency_ms"]
        metrics["eval_size_mb"] = cost["size_mb"]
        trial = getattr(self, "_trial", None)
        if isinstance(trial, optuna.Trial):  # benchmark bookkeeping, not part of what a user writes
            logits = self.predict(self.test).predictions  # no labels: the teacher does not run
            test_accuracy = float((np.argmax(logits, axis=-1) == self.test_labels).mean())
            args = cast(DistillationArguments, self.args)
            width = args.width
            trial.set_user_attr(
                "arch",
                {
                    "depth": args.depth,
                    "width": width,
                    "heads": self.space.student.heads_for(width),
                    "ffn": self.space.student.ffn_for(width, fixed_ffn_ratio(self.space)),
                },
            )
            trial.set_user_attr(
                "metrics",
                {
                    "accuracy": metrics["eval_accuracy"],
                    "latency_ms": cost["latency_ms"],
                    "size_mb": cost["size_mb"],
                },
            )
            trial.study.set_user_attr(f"{TEST_SCORES_PREFIX}{trial.number}", {"test_accuracy": test_accuracy})
        return metrics


def fixed_ffn_ratio(space: SpaceConfig) -> float:
    """The peer searches depth and width only: a searched ffn_ratio is read at its largest value."""
    ratio = space.student.ffn_ratio
    return float(ratio.values_bound()[1] if isinstance(ratio, Dist) else ratio)


def suggest(trial: optuna.Trial, name: str, value: Any) -> Any:
    """One value of the space: asked of the trial when searchable, else fixed."""
    if not isinstance(value, Dist):
        return value
    if value.type == "categorical":
        return trial.suggest_categorical(name, list(value.choices or []))
    assert value.low is not None and value.high is not None
    if value.type == "int":
        return trial.suggest_int(
            name, int(value.low), int(value.high), step=int(value.step or 1), log=value.log
        )
    return trial.suggest_float(name, value.low, value.high, step=value.step, log=value.log)


def make_hp_space(space: SpaceConfig) -> Any:
    def hp_space(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "depth": suggest(trial, "depth", space.student.depth),
            "width": suggest(trial, "width", space.student.width),
            "distill_lambda": suggest(trial, "lambda", space.distill.lam),
            "temperature": suggest(trial, "temperature", space.distill.temperature),
            "learning_rate": suggest(trial, "learning_rate", space.distill.learning_rate),
        }

    return hp_space


def copy_teacher_layers(teacher: Any, student: Any, depth: int) -> None:
    """DistilBERT's init for a student of the teacher's width: embeddings, evenly spaced layers, head."""
    total = teacher.config.num_hidden_layers
    keep = [round((i + 1) * total / depth) - 1 for i in range(depth)]
    state = {}
    for key, value in teacher.state_dict().items():
        found = re.search(r"\.layer\.(\d+)\.", key)
        if found:
            layer = int(found.group(1))
            if layer not in keep:
                continue
            key = key.replace(f".layer.{layer}.", f".layer.{keep.index(layer)}.", 1)
        state[key] = value
    student.load_state_dict(state)  # strict: every student weight comes from the teacher


def make_model_init(teacher_dir: str, teacher: Any, space: SpaceConfig, hp_space: Any) -> Any:
    def model_init(trial: optuna.Trial | None) -> Any:
        # The Trainer calls model_init before it applies hp_space to the arguments: ask the trial here
        # (Optuna returns the same values when hp_space asks again).
        params = hp_space(trial) if trial is not None else {"depth": 1, "width": teacher.config.hidden_size}
        depth, width = int(params["depth"]), int(params["width"])
        config = AutoConfig.from_pretrained(
            teacher_dir,
            num_hidden_layers=depth,
            hidden_size=width,
            num_attention_heads=space.student.heads_for(width),
            intermediate_size=space.student.ffn_for(width, fixed_ffn_ratio(space)),
        )
        student = AutoModelForSequenceClassification.from_config(config)
        if width == teacher.config.hidden_size and trial is not None:
            copy_teacher_layers(teacher, student, depth)
        return student

    return model_init


def run(space: SpaceConfig, out: Path, budget_s: float, seed: int, trials: int) -> optuna.Study:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher_dir = str(space.teacher)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    data = load_text_data(
        space.dataset, teacher.config.num_labels, teacher.config.label2id, space.train_examples()
    )
    max_length = space.train.max_length
    train = Examples(data.train, tokenizer, max_length)
    validation = Examples(data.validation, tokenizer, max_length)
    test = Examples(data.test, tokenizer, max_length, with_labels=False)
    print(
        f"hf-trainer peer: {len(train)} train, {len(validation)} validation, {len(test)} test examples; "
        f"{space.train.steps} steps of {space.train.batch_size} per trial; budget {budget_s:.0f} s",
        flush=True,
    )
    args = DistillationArguments(
        output_dir=str(out / "trainer"),
        max_steps=space.train.steps,
        per_device_train_batch_size=space.train.batch_size,
        per_device_eval_batch_size=space.train.eval_batch_size,
        warmup_steps=space.train.warmup_ratio,  # a float < 1 is a share of the steps
        weight_decay=space.train.weight_decay,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        seed=seed,
        eval_strategy="no",  # one evaluation at the end of each trial, as autodistill without early stopping
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    hp_space = make_hp_space(space)
    trainer = DistillationTrainer(
        model_init=make_model_init(teacher_dir, teacher, space, hp_space),
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=lambda p: {
            "accuracy": float((np.argmax(p.predictions, axis=-1) == p.label_ids).mean())
        },
        teacher=teacher,
        space=space,
        test=test,
        test_labels=data.test.labels,
    )
    storage = f"sqlite:///{(out / 'optuna.db').resolve()}"
    print(f"hf-trainer peer: set up in {time.perf_counter() - start:.1f} s; searching", flush=True)
    start = time.perf_counter()
    best = trainer.hyperparameter_search(
        hp_space=hp_space,
        # several objectives: a list of values (transformers' annotation says float)
        compute_objective=lambda m: [m["eval_accuracy"], m["eval_latency_ms"], m["eval_size_mb"]],  # type: ignore[arg-type,return-value]
        n_trials=trials,
        direction=DIRECTIONS,
        backend="optuna",
        # passed on to optuna.create_study / study.optimize
        storage=storage,
        study_name=STUDY,
        sampler=optuna.samplers.TPESampler(seed=seed),
        timeout=budget_s,
        catch=(Exception,),
    )
    study = optuna.load_study(study_name=STUDY, storage=storage)
    study.set_user_attr("search_seconds", time.perf_counter() - start)
    study.set_user_attr("space", space.model_dump(mode="json", by_alias=True))
    print(f"hf-trainer peer: {len(study.trials)} trials, front of {len(best)}", flush=True)
    return study


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for optuna.db (must not hold a study)"
    )
    parser.add_argument("--budget-seconds", type=float, required=True, help="Optuna timeout of the search")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sampler and training (train.seed)")
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--space", type=Path, default=SPACE)
    parser.add_argument("--teacher", default=str(SHARED / "models" / "minilm-sst2-teacher"))
    parser.add_argument("--dataset", default=str(SHARED / "data" / "sst2"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="as autodistill's --set"
    )
    args = parser.parse_args()
    if (args.out / "optuna.db").exists():
        raise SystemExit(f"--out {args.out}: already holds optuna.db; the peer starts from nothing")
    sets = [*args.set, f"train.seed={args.seed}"]
    space = load_space(args.space, sets, teacher=args.teacher, dataset=args.dataset).config
    optuna.logging.set_verbosity(optuna.logging.INFO)
    run(space, args.out, args.budget_seconds, args.seed, args.trials)


if __name__ == "__main__":
    main()
