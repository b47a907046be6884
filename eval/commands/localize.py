"""exif-jax localize IMAGE_OR_DIR... --out OUT: heatmap, score and verdict per image.

Uses the bundled model unless --checkpoint is given. Writes OUT/report.html (one
self-contained page: what the model is and tells apart, then per image the original, the map
on one fixed scale, its mask outlined, the attribute maps the model tells apart on held-out
cameras; an index sorted by score), OUT/maps/*, OUT/scores.csv, and prints a table. With
--masks DIR (one folder of images, masks matched by stem as `exif-jax eval` does) the report
also outlines the ground truth and shows the metrics (OUT/metrics.json). A missing,
unreadable, tiny or huge file is reported and the rest go on.
"""

import os
import pathlib

from absl import app
from absl import flags

from eval.commands import shared_flags
from eval.data import datasets
from eval.runs import inputs
from exif_jax.cli import command
from exif_jax.cli import ctrl_c
from exif_jax.data import files

# --help lists the shared evaluation flags (--checkpoint, --out, ...) too.
flags.adopt_module_key_flags(shared_flags)


def table(records) -> str:
  """One line per image, named by its printable stem (control characters escaped)."""
  width = max([len(r["name"]) for r in records] + [5])
  lines = [f"{'image':<{width}}  {'score':>6}  verdict"]
  for r in sorted(records, key=lambda r: -r.get("score", -1.0)):
    if "score" in r:
      note = " (no signal)" if r["no_signal"] else ""
      lines.append(f"{r['name']:<{width}}  {r['score']:6.3f}  {r['verdict']}{note}")
    else:
      lines.append(f"{r['name']:<{width}}  {'-':>6}  skipped: {r['error']}")
  return "\n".join(lines)


def _examples(paths: list[str]) -> list[datasets.Example]:
  if not shared_flags.MASKS.value:
    return inputs.examples_from_paths(paths)
  if len(paths) != 1 or not os.path.isdir(paths[0]):
    raise app.UsageError("--masks matches masks to the images of one folder: give one folder")
  try:
    return inputs.with_masks(paths[0], shared_flags.MASKS.value)
  except datasets.LayoutError as e:
    raise command.NothingDone(str(e)) from None


def main(argv):
  if len(argv) < 2:
    raise app.UsageError("give at least one image or folder")
  missing = [path for path in argv[1:] if not os.path.lexists(path)]
  if len(missing) == len(argv) - 1:  # Said before the model loads.
    raise command.NothingDone("no such file or folder: " + ", ".join(map(files.display_name,
                                                                         missing)))
  with ctrl_c.held():  # JAX: not for --help, and imported whole.
    from eval.commands import cli_common  # pylint: disable=g-import-not-at-top
  records = cli_common.run_batch(_examples(argv[1:]), "exif-jax localize")
  status = cli_common.exit_status(records)
  out = pathlib.Path(shared_flags.OUT.value)
  print(table(records))
  cli_common.print_metrics(out)
  print(f"report: {files.display_name(out / 'report.html')}")
  return status


if __name__ == "__main__":
  command.run(main)
