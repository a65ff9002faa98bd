"""The cache: in-memory records per user and source, persisted to SQLite."""

from crm_tui.store.cache import CacheStore, StoreChange
from crm_tui.store.db import Database

__all__ = ["CacheStore", "Database", "StoreChange"]
