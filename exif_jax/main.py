"""Train exif-jax: python -m exif_jax.main --config configs/NAME.py --workdir DIR.

Override any config field on the command line, e.g. --config.data.data_dir=SHARDS
--config.train.steps=1000. Rerunning with the same workdir resumes from its latest
checkpoint. Stage 2: --config.stage=classifier --config.init_from=STAGE1_WORKDIR.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from exif_jax.cli import command
from exif_jax.cli import ctrl_c

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with ctrl_c.held():  # JAX: not for --help, and imported whole.
    from exif_jax.training import train  # pylint: disable=g-import-not-at-top
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except train.RunRefused as e:
    raise command.NothingDone(str(e)) from None


if __name__ == "__main__":
  command.run(main)
