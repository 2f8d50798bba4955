"""The study: its sampler, and opening it on persistent storage (created, or resumed when it exists)."""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

from autodistill.config.schema import METRIC_DIRECTIONS, SpaceConfig
from autodistill.store.locations import Locations
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
    with warnings.catch_warnings():  # group is marked experimental, and has been since v2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)


def open_study(loc: Locations, space: SpaceConfig, seed: int) -> Any:
    """Create the study, or load it when it exists (resume); its objectives must not have changed."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    objectives = list(space.search.objectives)
    directions = [METRIC_DIRECTIONS[o] for o in objectives]
    if loc.storage.startswith("sqlite:///"):
        loc.out.mkdir(parents=True, exist_ok=True)

    def create() -> Any:
        storage: Any = loc.storage
        if re.match(r"^(sqlite|postgresql|mysql)", loc.storage):
            # The heartbeat lets any later run (or another worker) see that a trial's process died:
            # the trial is marked failed, and its parameters are queued once more.
            beat = space.search.heartbeat_seconds
            storage = RDBStorage(
                loc.storage,
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
    # Trials on one front must be comparable: same teacher, data, student space, recipe, measurement.
    recipe = comparable_fingerprint(space)
    stored_recipe = study.user_attrs.get("recipe_fingerprint")
    if stored_recipe is not None and stored_recipe != recipe:
        raise SearchError(
            f"--study {loc.study_name}: it was run with another teacher, dataset, student space, training or "
            "latency settings; their trials would not be comparable: use another --study name or --out directory"
        )
    study.set_user_attr("objectives", objectives)
    study.set_user_attr("recipe_fingerprint", recipe)
    # A resumed study reseeds its sampler by its length, so it does not replay its first proposals.
    # Workers on a shared database also salt it by process, so workers that start together explore
    # different points; a sequential run on the default local storage repeats exactly.
    salt = 0 if loc.storage_is_local else os.getpid() * 7919
    if study.trials or salt:
        study.sampler = make_sampler(space.search.sampler, (seed + len(study.trials) + salt) % 2**32)
    return study


def comparable_fingerprint(space: SpaceConfig) -> str:
    """What makes two trials comparable: everything but the sampler/stopping choices and the seed."""
    parts = space.model_dump(
        mode="json", exclude={"search": {"sampler", "heartbeat_seconds", "constraints", "early_stopping"}}
    )
    parts["train"].pop("seed", None)
    return short_hash(parts)
