"""autodistill: search for the best small student to distil from a Hugging Face classifier."""

__version__ = "0.1.0"
