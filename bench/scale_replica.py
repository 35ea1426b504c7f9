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
import pyarrow.compute as pc
import pyarrow.parquet as pq

COLLECTION = "scale"


def replicate(data: Path, out: Path, clips: int, collection: str = COLLECTION) -> int:
    """Write `out`, a data root whose `collection` has the shards of `data`'s repeated until it holds
    `clips` clips (the last one a copy of a part's first rows); returns `clips`."""
    data, out = Path(data), Path(out)
    index = pq.read_table(data / "shards" / collection / "index.parquet")
    if index.num_rows == 0 or clips < 1:
        raise ValueError(f"{data}: collection {collection!r} has no shards to replicate (or clips={clips} < 1)")
    rows = index.to_pylist()
    shutil.rmtree(out, ignore_errors=True)
    parts, shards = out / "catalog" / collection / "clips", out / "shards" / collection
    parts.mkdir(parents=True)
    shards.mkdir(parents=True)
    made, total = [], 0
    while total < clips:  # round robin over the measured shards; the last one cut to the count
        row = dict(rows[len(made) % len(rows)])
        name = f"shard-{len(made):06d}"
        source = (data / "catalog" / collection / "clips" / f"{row['shard']}.parquet").resolve()
        if total + row["clips"] <= clips:
            os.symlink(source, parts / f"{name}.parquet")
        else:
            cut = pq.read_table(source).slice(0, clips - total)
            pq.write_table(cut, parts / f"{name}.parquet", compression="zstd")
            row.update(clips=cut.num_rows, seconds=float(pc.sum(cut.column("seconds")).as_py()))
        row.update(shard=name, path=f"shards/{collection}/{name}.tar", idx=f"shards/{collection}/{name}.idx")
        made.append(row)
        total += row["clips"]
    pq.write_table(pa.Table.from_pylist(made, schema=index.schema), shards / "index.parquet")
    record = json.loads((data / "shards" / collection / "_COMPLETE.json").read_text())
    (shards / "_COMPLETE.json").write_text(json.dumps({**record, "shards": len(made)}, indent=1))
    return total
