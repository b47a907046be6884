"""Model-only copy of a run's latest checkpoint: python -m exif_jax.training.export --checkpoint W --out DIR.

Drops the optimizer and data state, keeps the model and its config, so the copy is small
enough to ship (the bundled model in exif_jax/bundled_model is made this way) and
`checkpointing.restore(DIR)` reads it like any run.
"""

from absl import app
from absl import flags

from exif_jax.training import checkpointing

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Workdir, checkpoints/ or step folder.",
                                  required=True)
_OUT = flags.DEFINE_string("out", None, "New folder for the model-only checkpoint.",
                           required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  model = checkpointing.restore(_CHECKPOINT.value)
  config = checkpointing.restore_config(_CHECKPOINT.value)
  print(f"exported -> {checkpointing.save_model(_OUT.value, model, config)}")


if __name__ == "__main__":
  app.run(main)
