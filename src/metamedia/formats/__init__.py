"""Catalog readers. Each yields `RawRecord`s: a dict in our schema, or an error.

Readers only parse and map field names; validation happens once, in the
ingest service, so every format is held to the same rules.
"""
