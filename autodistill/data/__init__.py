"""Raw examples from a hub id, a local directory, one data file, or class folders."""

from autodistill.data.sources import DataError, is_class_folders, load_class_folders, load_raw, pick_column

__all__ = ["DataError", "is_class_folders", "load_class_folders", "load_raw", "pick_column"]
