"""Model-only copy of a run's latest checkpoint:
python -m exif_jax.training.export --checkpoint W --out DIR.

Drops the optimizer and data state, keeps the model and its config, so the copy is small
enough to ship (the bundled model in exif_jax/bundled_model is made this way) and
`checkpointing.restore(DIR)` reads it like any run. The run's last validation (metrics.jsonl)
comes along as DIR/validation.json (validate.py), so that reports made with the copy can say
what it tells apart.
"""

from absl import app
from absl import flags
from etils import epath

from exif_jax.data import files
from exif_jax.training import checkpointing
from exif_jax.training import validate

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
  validation = validate.from_training(_CHECKPOINT.value)
  if validation is not None:
    files.write_json(epath.Path(_OUT.value) / validate.FILE, validation)


if __name__ == "__main__":
  app.run(main)
