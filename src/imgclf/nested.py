"""Nested mappings walked to their leaves: one walk for params.yaml as MLflow params
(``train.epochs``) and for nested metrics as flat numbers (``macro_f1``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def leaves(tree: Mapping[str, Any], sep: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """{"train": {"epochs": 3}} -> ("train<sep>epochs", 3), depth first, in the mapping's order."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from leaves(value, sep, f"{prefix}{key}{sep}")
        else:
            yield f"{prefix}{key}", value
