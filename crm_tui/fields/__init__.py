"""Field mapping: what each source's records hold (discover), mapping it (service), and the
cached records mapped again without a sync. See MAPPING_API.md."""
