"""`exif-jax SUBCOMMAND ...`: one entry point, each subcommand a thin front to its module.

Only the chosen module is imported, so each keeps its own absl flags and `--help`. A module
whose flags would clash with others' when imported beside them (convert_tf1's --out and
--config) defines them in `define_flags()`, called once it is chosen.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

from exif_jax.cli import command
from exif_jax.cli import ctrl_c

SUBCOMMANDS = {
    "prep": ("data_prep.__main__", "photos -> ArrayRecord shards + dataset_info.json"),
    "train": ("exif_jax.main",
              "train stage 1 (EXIF consistency), stage 2 (classifier) or a baseline"),
    "validate": ("exif_jax.training.validate",
                 "what a model tells apart on held-out camera models -> MODEL/validation.json"),
    "eval": ("eval.commands.run_eval", "batch evaluation of a checkpoint over a benchmark folder"),
    "localize": ("eval.commands.localize", "heatmaps, scores and an HTML report for images"),
    "synth": ("eval.data.synth_splices", "make splices between photos of different cameras"),
    "calibrate": ("eval.commands.calibrate",
                  "a model's detection thresholds, from its evaluations of validation splices"),
    "table": ("eval.reporting.paper_table",
              "the paper's Tables 1-2 (mAP, p-mAP, MCC, F1) from eval runs"),
    "convert-tf1": ("exif_jax.training.convert_tf1",
                    "the original TF1 weights -> an exif-jax checkpoint"),
}


def version() -> str:
  return f"exif-jax {importlib.metadata.version('exif-jax')}"


def usage() -> str:
  lines = ["usage: exif-jax SUBCOMMAND [FLAGS...]   (exif-jax SUBCOMMAND --help for its flags)",
           "       exif-jax --version", "", "subcommands:"]
  lines += [f"  {name:<12} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
  return "\n".join(lines) + "\n" + command.EXIT_STATUS_HELP


def main(argv: list[str] | None = None) -> None:
  ctrl_c.hold()  # Importing a subcommand's module takes seconds: Ctrl-C waits.
  argv = sys.argv if argv is None else argv
  if len(argv) < 2:
    print(usage(), file=sys.stderr, end="")
    sys.exit(command.USAGE_OR_NOTHING_DONE)
  if argv[1] in ("-h", "--help", "help"):
    print(usage(), end="")
    sys.exit(command.OK)
  if argv[1] == "--version":
    print(version())
    sys.exit(command.OK)
  name = argv[1]
  if name not in SUBCOMMANDS:
    print(f"exif-jax: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr, end="")
    sys.exit(command.USAGE_OR_NOTHING_DONE)
  args = argv[2:]
  command.hide_native_logs(args)  # Before the subcommand's module imports jax.
  module = importlib.import_module(SUBCOMMANDS[name][0])
  if hasattr(module, "define_flags"):
    module.define_flags()
  # absl's --help prints the __main__ module's docstring and the flags of the module named
  # by argv[0]: point both at the subcommand's module.
  sys.modules["__main__"].__doc__ = module.__doc__
  command.run(module.main, [module.__name__, *args])


if __name__ == "__main__":
  main()
