"""What a reload changed: the kernel's diff of two catalogs' digests."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CatalogDiff", "diff_catalogs"]


@dataclass(frozen=True)
class CatalogDiff:
    added: list[str]
    changed: list[str]
    removed: list[str]


def diff_catalogs(before: Mapping[str, str], after: Mapping[str, str]) -> CatalogDiff:
    """Job ids (sorted) whose digest appeared, changed or disappeared. A digest stands for
    everything that makes the job: its file's content, or its problems when it is invalid."""
    return CatalogDiff(added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)),
                       changed=sorted(j for j in set(after) & set(before) if after[j] != before[j]))
