"""Search over the cached records, as a person types.

Callers use `crm_tui.search.index` (SearchIndex, SearchResult, Hit, filter_hint, field_text,
CONTACT_FIELDS) and `crm_tui.search.query` (parse_query, QueryError, words_for, query_help,
MIN_QUERY); the other modules are the index's machinery. Nothing is imported here, so that
a CLI command that only parses a query never loads numpy.
"""
