"""Where a study's records live: its locations, the MLflow tracker, the caches, and finding a study."""

from autodistill.store.caches import cached, teacher_fingerprint
from autodistill.store.locations import (
    Locations,
    check_database,
    check_tracking,
    experiment_url,
    redact,
    resolve_locations,
)
from autodistill.store.studies import (
    StudyError,
    completed_trial,
    open_existing,
    study_cache_dir,
    study_dir,
    tracking_uri,
)
from autodistill.store.tracking import Tracker

__all__ = [
    "Locations",
    "StudyError",
    "Tracker",
    "cached",
    "check_database",
    "check_tracking",
    "completed_trial",
    "experiment_url",
    "open_existing",
    "redact",
    "resolve_locations",
    "study_cache_dir",
    "study_dir",
    "teacher_fingerprint",
    "tracking_uri",
]
