"""Duplicate detection across sources: the same person in several CRMs."""

from crm_tui.dedup.clusters import Cluster, DuplicateFinder, Link, People, SharedPoint

__all__ = ["Cluster", "DuplicateFinder", "Link", "People", "SharedPoint"]
