"""What every command shares: the one-line error exit, and quieting the libraries' own chatter."""

from __future__ import annotations

import os
import sys

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def fail(problems: list[str]) -> int:
    for problem in problems:
        print(f"autodistill: error: {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT


def quiet_libraries() -> None:
    """Our own progress lines replace the libraries' per-step logs and progress bars."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import datasets
    import optuna
    import transformers

    from autodistill.store.tracking import quiet as quiet_tracking

    quiet_tracking()
    for name in ("datasets", "huggingface_hub", "optuna"):
        logging.getLogger(name).setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.disable_progress_bar()
