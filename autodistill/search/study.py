"""The study: its sampler, and opening it on persistent storage (created, or resumed when it exists)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from autodistill.config.schema import METRIC_DIRECTIONS, SpaceConfig
from autodistill.search.workers import SAMPLER_SEED_ATTR, supervised_index
from autodistill.store.caches import teacher_fingerprint
from autodistill.store.locations import Locations, engine_kwargs, optuna_storage
from autodistill.store.tracking import retry
from autodistill.util.hashing import short_hash


class SearchError(Exception):
    """A study that cannot be opened as asked (e.g. resumed with other objectives)."""


def make_sampler(name: str, seed: int) -> Any:
    """The study's sampler. TPE by default: it handles several objectives and few trials well."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=10)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
    # group=True models conditional parameters jointly: width is not asked of teacher-layers students.
    # constant_liar=True counts the trials other workers are running as bad results, so that workers
    # asking at the same moment are not all sent to the same promising student. Optuna 5 has it on by
    # default; it is named here because the studies of several workers depend on it.
    with warnings.catch_warnings():  # group is marked experimental, and has been since v2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=8
        )


def open_study(loc: Locations, space: SpaceConfig, seed: int, data_fingerprint: str) -> Any:
    """Create the study, or load it when it exists (resume); its objectives, constraints, recipe, teacher
    (by content) and examples (``data_fingerprint``: their texts and labels) must not have changed."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    objectives = list(space.search.objectives)
    directions = [METRIC_DIRECTIONS[o] for o in objectives]
    if loc.storage.startswith("sqlite:///") or loc.journal:
        loc.out.mkdir(parents=True, exist_ok=True)
        if loc.journal:
            Path(loc.storage).parent.mkdir(parents=True, exist_ok=True)

    def create() -> Any:
        # A journal file has no heartbeat: its dead workers' trials are found by process id instead
        # (search/workers.py).
        storage: Any
        if not loc.has_heartbeat:
            storage = optuna_storage(loc.storage)
        else:
            # The heartbeat lets any later run (or another worker) see that a trial's process died:
            # the trial is marked failed, and its parameters are queued once more.
            beat = space.search.heartbeat_seconds
            storage = RDBStorage(
                loc.storage,
                engine_kwargs=engine_kwargs(loc.storage),
                heartbeat_interval=beat,
                grace_period=2 * beat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
        return optuna.create_study(
            storage=storage,
            study_name=loc.study_name,
            directions=directions,
            load_if_exists=True,
            sampler=make_sampler(space.search.sampler, seed),
        )

    study = retry(create)  # workers starting together race to create the storage's tables
    stored = study.user_attrs.get("objectives")
    if stored is not None and stored != objectives:
        raise SearchError(
            f"--study {loc.study_name}: it was created with objectives {stored}, not {objectives}; "
            "use another --study name or --out directory"
        )
    # Each trial's feasibility was judged, when it finished, by the constraints of that time: trials judged
    # by others would share one front, infeasible ones on it.
    constraints = space.search.model_dump(mode="json")["constraints"]
    stored_constraints = study.user_attrs.get("constraints")
    if stored_constraints is not None and stored_constraints != constraints:
        raise SearchError(
            f"--study {loc.study_name}: it was run with search.constraints {stored_constraints or 'none'}, "
            f"not {constraints or 'none'}; its trials were judged feasible by those: keep them, or use another "
            "--study name or --out directory"
        )
    # Trials on one front must be comparable: same teacher, data, student space, recipe, measurement.
    recipe = comparable_fingerprint(space)
    stored_recipe = study.user_attrs.get("recipe_fingerprint")
    if stored_recipe is not None and stored_recipe != recipe:
        raise SearchError(
            f"--study {loc.study_name}: it was run with another teacher, dataset, student space, training or "
            "latency settings; their trials would not be comparable: use another --study name or --out directory"
        )
    # The same paths may hold a retrained teacher or edited data: compared by content (after the recipe,
    # whose settings also choose which examples there are).
    teacher = teacher_fingerprint(str(space.teacher))
    stored_teacher = study.user_attrs.get("teacher_fingerprint")
    if stored_teacher is not None and stored_teacher != teacher:
        raise SearchError(
            f"--teacher {space.teacher}: its files changed since study '{loc.study_name}' was run (retrained or "
            "replaced); its trials would not be comparable: restore that teacher, or use another --study name "
            "or --out directory"
        )
    stored_data = study.user_attrs.get("data_fingerprint")
    if stored_data is not None and stored_data != data_fingerprint:
        raise SearchError(
            f"--dataset {space.dataset.path}: its examples or labels changed since study '{loc.study_name}' was "
            "run; its trials would not be comparable: restore that data, or use another --study name or --out "
            "directory"
        )
    study.set_user_attr("objectives", objectives)
    if study.metric_names != objectives:  # optuna-dashboard labels the axes with these
        with warnings.catch_warnings():  # experimental since v3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objectives)
    study.set_user_attr("constraints", constraints)
    study.set_user_attr("recipe_fingerprint", recipe)
    study.set_user_attr("teacher_fingerprint", teacher)
    study.set_user_attr("data_fingerprint", data_fingerprint)
    chosen = sampler_seed(
        seed, len(study.trials), shared=supervised_index() is not None or not loc.storage_is_local
    )
    if chosen != seed:
        study.sampler = make_sampler(space.search.sampler, chosen)
    setattr(study.sampler, SAMPLER_SEED_ATTR, chosen)  # recorded on each trial (search/workers.py)
    return study


def sampler_seed(seed: int, trials_so_far: int, shared: bool) -> int:
    """The seed of this worker's sampler.

    Workers that share a study (``--workers N``, or ``--storage`` on several machines) draw theirs from
    the operating system: any rule built from ``--seed`` and what a worker knows of itself repeats
    somewhere (every worker in a container is process 1, and all start before any trial is told), and
    workers with one seed propose the same random start-up trials. Each trial records the seed of the
    worker that proposed it. A study on the default local storage, run by one process, takes ``--seed``
    and repeats; resumed, it is reseeded by its length so that it does not replay its first proposals.
    """
    import secrets

    if shared:
        return secrets.randbits(32)
    return (seed + trials_so_far) % 2**32


def reopen_study(loc: Locations) -> Any:
    """The study as it is now in its storage (opened by ``open_study`` before), to read or to settle."""
    import optuna

    return optuna.load_study(study_name=loc.study_name, storage=optuna_storage(loc.storage))


def queue_first_trials(study: Any, space: SpaceConfig) -> int:
    """Queue ``search.first_trials`` ahead of the sampler's proposals; how many were queued. One already
    run or queued (a resumed study, another worker) is not queued again: Optuna compares the given values."""
    before = len(study.get_trials(deepcopy=False))
    for params in space.search.first_trials:
        study.enqueue_trial(dict(params), skip_if_exists=True)
    return len(study.get_trials(deepcopy=False)) - before


def comparable_fingerprint(space: SpaceConfig) -> str:
    """What makes two trials comparable: everything but the sampler/stopping choices (first trials
    included), the seed and where the caches live (they are keyed by content).

    Constraints are left out here but kept all the same: ``open_study`` compares them on their own, to
    name them when they differ (and so that studies fingerprinted before keep resuming).
    """
    parts = space.model_dump(
        mode="json",
        exclude={
            "cache": True,
            "search": {"sampler", "heartbeat_seconds", "constraints", "early_stopping", "first_trials"},
        },
    )
    parts["train"].pop("seed", None)
    for key in ("deterministic", "mixed_precision", "log_every"):  # how trials run, not what they train
        parts["train"].pop(key, None)
    parts["latency"] = space.latency.identity()  # as before latency.device and batch_size existed
    return short_hash(parts)
