"""A collection of the paper's size for the stages that read only the catalog: `shards diet`, `load_diet`.

Diets are built from the catalog parts, the shard index and the completion record; they never open a tar.
So the bench can run them at 3.85 M clips for real instead of extrapolating: `replicate` makes a data root
whose collection lists enough shards to hold `clips` clips, each a link to one of the measured collection's
catalog parts (round robin), with matching shard-index rows and the same completion record. The parts are
real (written by the ingest just measured); only their repetition is made up, and no tar exists.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COLLECTION = "scale"


def replicate(data: Path, out: Path, clips: int, collection: str = COLLECTION) -> int:
    """Write `out`, a data root whose `collection` has the shards of `data`'s repeated until it holds at
    least `clips` clips; returns how many it holds."""
    data, out = Path(data), Path(out)
    index = pq.read_table(data / "shards" / collection / "index.parquet")
    if index.num_rows == 0:
        raise ValueError(f"{data}: collection {collection!r} has no shards to replicate")
    rows = index.to_pylist()
    shutil.rmtree(out, ignore_errors=True)
    parts, shards = out / "catalog" / collection / "clips", out / "shards" / collection
    parts.mkdir(parents=True)
    shards.mkdir(parents=True)
    made, total = [], 0
    while total < clips or not made:  # round robin over the measured shards
        row = dict(rows[len(made) % len(rows)])
        name = f"shard-{len(made):06d}"
        os.symlink((data / "catalog" / collection / "clips" / f"{row['shard']}.parquet").resolve(),
                   parts / f"{name}.parquet")
        row.update(shard=name, path=f"shards/{collection}/{name}.tar", idx=f"shards/{collection}/{name}.idx")
        made.append(row)
        total += row["clips"]
    pq.write_table(pa.Table.from_pylist(made, schema=index.schema), shards / "index.parquet")
    record = json.loads((data / "shards" / collection / "_COMPLETE.json").read_text())
    (shards / "_COMPLETE.json").write_text(json.dumps({**record, "shards": len(made)}, indent=1))
    return total
