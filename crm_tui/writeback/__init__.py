"""Two-way sync: edits of vendor records, saved in the outbox, sent safely, audited."""
