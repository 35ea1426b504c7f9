"""A collection's fingerprint: what its shards' bytes depend on, so a re-run that would differ refuses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from ingest.config import IngestConfig, Source
from ingest.listing import Listing


def fingerprint(sources: Sequence[Source], listing: Listing, cfg: IngestConfig) -> str:
    """sha256 over the byte-relevant config, the sources (how each is cut) and each source's listing
    digest (records + file sizes, computed by its listing job)."""
    # Where a corpus lives is not what it holds: roots stay out, so a moved corpus or a relative path
    # given from another folder resumes the same collection (the listing carries paths and sizes).
    described = [{**{k: v for k, v in s.to_dict().items() if k != "root"}, "cuts": part.cut, "listing": part.digest}
                 for s, part in zip(sources, listing.sources)]
    text = json.dumps({"config": cfg.fingerprint_fields(), "sources": described}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
