"""Duplicate detection across sources: the same person in several CRMs."""

from crm_tui.dedup.clusters import Cluster, Link, People, SharedPoint
from crm_tui.dedup.finder import DuplicateFinder

__all__ = ["Cluster", "DuplicateFinder", "Link", "People", "SharedPoint"]
