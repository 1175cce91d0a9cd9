"""Meta-Media-Search: semantic search over a media catalog.

The Python API is `MetaMedia`, a facade over the services::

    from metamedia import MetaMedia
    mm = MetaMedia(data_dir="./data")
    mm.ingest("catalog.jsonl")
    mm.search("heist movie with a twist ending", filters={"genres": ["crime"]})
"""

from __future__ import annotations

__version__ = "0.1.0"

from metamedia.facade import MetaMedia

__all__ = ["MetaMedia", "__version__"]
