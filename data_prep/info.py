"""dataset_info.json: what a complete dataset holds, summed over its shards."""

from __future__ import annotations

import collections
from typing import Any

from etils import epath

from exif_jax.data import exif_attrs
from exif_jax.data import files
from exif_jax.data import records


def write_dataset_info(out: epath.Path) -> dict[str, Any] | None:
  """Writes dataset_info.json if every shard is complete; returns it, or None if not yet.

  Photos repeated across shards are counted once (first shard wins, as in
  `records.photo_index`) and the repeats are listed with the other skipped inputs.
  """
  shards = records.complete_shards(out)
  if not shards or len(shards) != shards[0].count:
    return None
  seen: dict[str, str] = {}
  skipped = []
  splits = collections.defaultdict(lambda: {"photos": 0, "patches": 0, "cameras": set()})
  values = {tag: collections.Counter() for tag in exif_attrs.EXIF_TAGS}
  for shard in shards:
    skipped.extend(shard.skipped)
    for photo in shard.photos:
      if photo["sha256"] in seen:
        skipped.append({"source": photo["source"],
                        "reason": f"duplicate of {seen[photo['sha256']]}"})
        continue
      seen[photo["sha256"]] = photo["source"]
      split = splits[photo["split"]]
      split["photos"] += 1
      split["patches"] += photo["num_patches"]
      split["cameras"].add(photo["camera"])
      for tag, value in photo["exif"].items():
        values[tag][value] += 1
  info = {
      "num_records": len(seen),
      "num_shards": len(shards),
      "num_skipped": len(skipped),
      "splits": {name: {"photos": s["photos"], "patches": s["patches"],
                        "cameras": sorted(s["cameras"])}
                 for name, s in sorted(splits.items())},
      "attributes": {tag: dict(counter.most_common()) for tag, counter in values.items()},
      "skipped": skipped,
      "settings": shards[0].settings,
  }
  files.write_json(epath.Path(out) / records.DATASET_INFO, info)
  return info
