"""The search space: its typed schema (pure, no heavy imports) and reading it from a YAML file."""

from autodistill.config.schema import (
    METRIC_DIRECTIONS,
    DatasetSpec,
    Dist,
    LatencySpec,
    SpaceConfig,
    possible_ints,
    upper_bound,
)
from autodistill.config.spacefile import ConfigError, LoadedSpace, load_space

__all__ = [
    "METRIC_DIRECTIONS",
    "ConfigError",
    "DatasetSpec",
    "Dist",
    "LatencySpec",
    "LoadedSpace",
    "SpaceConfig",
    "load_space",
    "possible_ints",
    "upper_bound",
]
