"""Synthetic sample yearbooks with a known ground truth (everything here is SYNTHETIC).

See docs/sample-data.md.  ``write_sample`` is the public entry point.
"""
from warehouse.sample.generate import write_sample

__all__ = ["write_sample"]
