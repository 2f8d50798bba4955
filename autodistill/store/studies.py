"""Find a study that ``search`` wrote: ``--out DIR``, or ``--storage URL --study NAME`` (PostgreSQL too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodistill.store.locations import (
    JOURNAL_FILE,
    SQLITE_FILE,
    check_grpc,
    default_storage,
    is_grpc,
    is_journal,
    optuna_storage,
    redact,
    storage_argument,
)
from autodistill.util.errors import first_line
from autodistill.util.files import writable


class StudyError(Exception):
    """The study or trial asked for does not exist; the message names the flag to change."""


def open_existing(out: str | None, storage: str | None, study_name: str | None) -> Any:
    """Load the study without creating anything.

    Raises:
        StudyError: no such directory, storage or study.
    """
    import optuna

    if storage is None:
        if out is None:
            raise StudyError(
                "give --out DIR (a directory that `autodistill search` wrote) or --storage URL --study NAME"
            )
        directory = Path(out).resolve()
        if not (directory / SQLITE_FILE).is_file() and not (directory / JOURNAL_FILE).is_file():
            raise StudyError(
                f"--out {out}: no {SQLITE_FILE} or {JOURNAL_FILE} there; point --out at a directory that "
                "`autodistill search` wrote"
            )
        storage = default_storage(directory)
    else:
        storage = storage_argument(storage)
        if is_grpc(storage) and (problem := check_grpc("--storage", storage)):
            raise StudyError(problem)
        if is_journal(storage) and not Path(storage).is_file():
            raise StudyError(f"--storage {storage}: no such journal file; give its path or a database URL")
    try:
        opened = optuna_storage(storage)
        names = optuna.study.get_all_study_names(storage=opened)
    except Exception as exc:  # bad URL, unreachable server, not an Optuna database
        raise StudyError(f"--storage {redact(storage)}: cannot read it ({redact(first_line(exc))})") from None
    if study_name is None:
        if len(names) != 1:
            raise StudyError(
                f"--study: the storage holds {len(names)} studies ({', '.join(names)}); name one"
            )
        study_name = names[0]
    elif study_name not in names:
        raise StudyError(
            f"--study {study_name}: not in the storage; it holds {', '.join(names) or 'no study'}"
        )
    return optuna.load_study(study_name=study_name, storage=opened)


def completed_trial(study: Any, number: int) -> Any:
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise StudyError(f"TRIAL {number}: study '{study.study_name}' has trials 0..{len(trials) - 1}")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        raise StudyError(f"TRIAL {number}: it is {trial.state.name}, not COMPLETE; pick one from pareto.csv")
    return trial


def study_dir(study: Any, out: str | None) -> Path:
    """The directory that holds the study's outputs: ``--out`` when given (the study was found there, so
    that is its directory on this machine, wherever the search ran), else the one ``search`` recorded."""
    return Path(out or study.user_attrs.get("out") or ".")


def tracking_uri(study: Any, flag: str | None, out: str | None) -> str:
    """``--tracking-uri``, else the URI the search recorded, else the default store in the study's directory.
    A recorded default store (``mlflow.db`` in the recorded directory) follows the study to ``--out``
    when the directory was moved or copied there."""
    if flag:
        return flag
    default = study_dir(study, out) / "mlflow.db"
    recorded = study.user_attrs.get("tracking_uri")
    if recorded:
        searched_in = Path(study.user_attrs.get("out") or ".") / "mlflow.db"
        if recorded == f"sqlite:///{searched_in}" and default.is_file():
            return f"sqlite:///{default.resolve()}"
        return str(recorded)
    if "tracking_uri" in study.user_attrs:  # recorded as None: it held a password
        raise StudyError(
            "--tracking-uri: this study's tracking URI holds a password and was not stored; pass it"
        )
    if not default.is_file():
        raise StudyError(
            f"--tracking-uri: no MLflow store recorded for this study and none at {default}; pass it"
        )
    return f"sqlite:///{default.resolve()}"


CACHE_DIR_ATTR = "cache_dir"


def study_cache_dir(study: Any, chosen: Path | None, default: Path) -> Path:
    """Where the study's teacher caches are: ``chosen`` (``--cache-dir`` or ``cache.dir``) when given, else
    the directory the study recorded when it exists and can be written here (it may be another machine's
    path), else ``default``."""
    if chosen is not None:
        return chosen
    recorded = study.user_attrs.get(CACHE_DIR_ATTR)
    if recorded and Path(recorded).is_dir() and writable(Path(recorded)):
        return Path(recorded)
    return default


# Test scores are recorded on the study, one user attribute per trial: a finished Optuna trial cannot
# take new attributes, and a front student is scored after its trial has finished.
TEST_SCORES_PREFIX = "test_metrics:"


SAMPLES_PREFIX = "samples:"


def record_test_scores(
    study: Any, number: int, scores: dict[str, float], samples: dict[str, str] | None = None
) -> None:
    if samples:  # written first: a trial with a test score has its samples too
        study.set_user_attr(f"{SAMPLES_PREFIX}{number}", samples)
    study.set_user_attr(f"{TEST_SCORES_PREFIX}{number}", scores)


def samples(study: Any) -> dict[int, dict[str, str]]:
    """What the front students showed (e.g. generated text), by trial number."""
    return {
        int(key.removeprefix(SAMPLES_PREFIX)): value
        for key, value in study.user_attrs.items()
        if key.startswith(SAMPLES_PREFIX)
    }


def test_scores(study: Any) -> dict[int, dict[str, float]]:
    """Every trial's test scores so far, by trial number (front students only are scored)."""
    return {
        int(key.removeprefix(TEST_SCORES_PREFIX)): value
        for key, value in study.user_attrs.items()
        if key.startswith(TEST_SCORES_PREFIX)
    }


# The teacher's reference figures, one user attribute per machine that timed them (its name after the
# prefix), and the latest under the plain name for readers that do not know of machines.
TEACHER_REFERENCE_ATTR = "teacher_reference"


def record_teacher_reference(study: Any, reference: dict[str, Any], machine: str) -> None:
    figures = {**reference, "machine": machine}
    study.set_user_attr(f"{TEACHER_REFERENCE_ATTR}@{machine}", figures)
    study.set_user_attr(TEACHER_REFERENCE_ATTR, figures)


def teacher_reference(study: Any, machines: set[str] | None = None) -> dict[str, Any]:
    """The teacher's reference figures timed on the one machine in ``machines`` (those of the students
    it is set beside), so that a student's latency is only compared with the teacher's on the same
    machine; the latest recorded when ``machines`` names none or several, or that machine has none.
    Empty when the study has none."""
    if machines and len(machines) == 1:
        (machine,) = machines
        same = study.user_attrs.get(f"{TEACHER_REFERENCE_ATTR}@{machine}")
        if same is not None:
            return dict(same)
    return dict(study.user_attrs.get(TEACHER_REFERENCE_ATTR) or {})
