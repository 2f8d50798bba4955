"""The command line: ``autodistill search | validate | report | export | train | teacher``."""

from autodistill.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
