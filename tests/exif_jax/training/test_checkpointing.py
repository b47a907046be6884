"""Orbax checkpoints: what a run saves, what `restore` gives back, and what it refuses."""

import json
import re
import shutil

import grain
import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from configs import tiny
from exif_jax.training import checkpointing
from exif_jax.training import sharding
from exif_jax.training import train


def tiny_config(**model_overrides):
  """The tiny config as training completes and saves it."""
  config = tiny.get_config()
  config.model.update(model_overrides)
  return train.with_derived_fields(config)


def new_state(config):
  return train.create_train_state(config, sharding.make_mesh(jax.devices()[:1]))


def data_iterator():
  return iter(grain.MapDataset.range(1000).batch(4).to_iter_dataset())


def leaves(tree) -> list[np.ndarray]:
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
  """A workdir with steps 1, 2, 3 saved (2 kept); (workdir, model and optimizer at 3).

  At step s the parameters are the initial ones + s and the data iterator has given s batches.
  """
  config = tiny_config()
  workdir = tmp_path_factory.mktemp("run")
  model, optimizer = new_state(config)
  iterator = data_iterator()
  with checkpointing.manager(workdir, config) as mngr:
    for step in (1, 2, 3):
      next(iterator)
      nnx.update(model, jax.tree.map(lambda x: x + 1, nnx.state(model, nnx.Param)))
      checkpointing.save(mngr, step, model, optimizer, iterator, config)
  return workdir, model, optimizer


def test_keeps_the_latest_checkpoints(saved_run):
  workdir, _, _ = saved_run
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2", "3"]


@pytest.mark.parametrize("where", ["", "checkpoints", "checkpoints/3"])
def test_restore_gives_the_saved_model_in_eval_mode(saved_run, where):
  workdir, model, _ = saved_run
  restored = checkpointing.restore(workdir / where)
  for a, b in zip(leaves(nnx.state(restored)), leaves(nnx.state(model)), strict=True):
    np.testing.assert_array_equal(a, b)
  assert all(bn.use_running_average for _, bn in nnx.iter_graph(restored)
             if isinstance(bn, nnx.BatchNorm))


def test_restore_reads_an_older_step(saved_run):
  workdir, model, _ = saved_run
  restored = checkpointing.restore(workdir / "checkpoints" / "2")
  for a, b in zip(leaves(nnx.state(restored, nnx.Param)), leaves(nnx.state(model, nnx.Param)),
                  strict=True):
    np.testing.assert_allclose(a, b - 1, atol=1e-6)


def test_restore_config_reads_the_saved_config(saved_run):
  workdir, _, _ = saved_run
  config = checkpointing.restore_config(workdir)
  assert config.model.width == tiny.get_config().model.width
  assert config.stage == "exif"


def test_restore_run_resumes_model_optimizer_and_data(saved_run):
  workdir, model, optimizer = saved_run
  config = tiny_config()
  fresh_model, fresh_optimizer = new_state(config)
  iterator = data_iterator()
  with checkpointing.manager(workdir, config) as mngr:
    step = checkpointing.restore_run(mngr, fresh_model, fresh_optimizer, iterator, config)
  assert step == 3
  for a, b in zip(leaves(nnx.state((fresh_model, fresh_optimizer))),
                  leaves(nnx.state((model, optimizer))), strict=True):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(next(iterator), [12, 13, 14, 15])  # The 4th batch.


def test_restore_run_refuses_another_model_or_stage(saved_run):
  workdir, model, optimizer = saved_run
  wider = tiny_config(width=8, head_widths=(16,))
  with checkpointing.manager(workdir, wider) as mngr:
    with pytest.raises(ValueError, match=r"model\.head_widths: checkpoint \[16, 16\], config "
                       r"\[16\]; model\.width: checkpoint 4, config 8"):
      checkpointing.restore_run(mngr, model, optimizer, data_iterator(), wider)
  stage_two = tiny_config()
  stage_two.stage = "classifier"
  with checkpointing.manager(workdir, stage_two) as mngr:
    with pytest.raises(ValueError, match="stage: checkpoint 'exif', config 'classifier'"):
      checkpointing.restore_run(mngr, model, optimizer, data_iterator(), stage_two)


def test_checkpoints_older_than_a_model_option_mean_its_default():
  config = tiny_config()
  older = json.loads(json.dumps(config.to_dict()))  # As a checkpoint holds it.
  del older["model"]["noise_residuals"]  # Saved before the option existed.
  checkpointing.check_compatible(older, config)
  with pytest.raises(ValueError, match="model.noise_residuals: checkpoint False, config True"):
    checkpointing.check_compatible(older, tiny_config(noise_residuals=True))
  # The other way round too: a newer checkpoint against a config restored from the older one.
  newer = json.loads(json.dumps(config.to_dict()))
  checkpointing.check_compatible(newer, ml_collections.ConfigDict(older))
  with pytest.raises(ValueError, match="model.noise_residuals: checkpoint True, config False"):
    checkpointing.check_compatible(tiny_config(noise_residuals=True).to_dict(),
                                   ml_collections.ConfigDict(older))


def with_saved_config(workdir, tmp_path, **changes):
  """A copy of the run in `workdir` whose latest saved config has `changes` ("section.option":
  value) made to it, as a checkpoint of an older version would hold them."""
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  path = copy / "checkpoints" / "3" / "config" / "metadata"
  saved = json.loads(path.read_text())
  for name, value in changes.items():
    section, option = name.split(".")
    saved[section][option] = value
  path.write_text(json.dumps(saved))
  return copy


def test_removed_options_at_their_old_defaults_are_accepted(saved_run, tmp_path):
  workdir, model, optimizer = saved_run
  copy = with_saved_config(workdir, tmp_path, **checkpointing.REMOVED_OPTIONS)
  config = checkpointing.restore_config(copy)
  assert not set(config.model) & {name.split(".")[1] for name in checkpointing.REMOVED_OPTIONS}
  restored = checkpointing.restore(copy)
  for a, b in zip(leaves(nnx.state(restored)), leaves(nnx.state(model)), strict=True):
    np.testing.assert_array_equal(a, b)
  fresh_model, fresh_optimizer = new_state(tiny_config())
  with checkpointing.manager(copy, tiny_config()) as mngr:
    assert checkpointing.restore_run(mngr, fresh_model, fresh_optimizer, data_iterator(),
                                     tiny_config()) == 3


@pytest.mark.parametrize("option, value", [("model.noise_stream_width", 16),
                                           ("model.post_processing_from_posteriors", True),
                                           ("model.num_attributes", 80)])
def test_a_removed_model_option_in_use_is_refused(saved_run, tmp_path, option, value):
  copy = with_saved_config(saved_run[0], tmp_path, **{option: value})
  step = copy / "checkpoints" / "3"
  message = (f"^{re.escape(str(step))}: saved with {option}={value!r}, which this version no "
             "longer has")
  with pytest.raises(ValueError, match=message):
    checkpointing.restore(copy)
  model, optimizer = new_state(tiny_config())
  with checkpointing.manager(copy, tiny_config()) as mngr:
    with pytest.raises(ValueError, match=message):
      checkpointing.restore_run(mngr, model, optimizer, data_iterator(), tiny_config())


def test_a_removed_training_option_in_use_refuses_resuming_only(saved_run, tmp_path):
  """A cosine-decay run's model restores; resuming it would silently change its schedule."""
  copy = with_saved_config(saved_run[0], tmp_path, **{"train.schedule": "cosine"})
  checkpointing.restore(copy)
  model, optimizer = new_state(tiny_config())
  with checkpointing.manager(copy, tiny_config()) as mngr:
    with pytest.raises(ValueError, match="train.schedule='cosine', which this version"):
      checkpointing.restore_run(mngr, model, optimizer, data_iterator(), tiny_config())


def test_no_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    checkpointing.restore(tmp_path)


def test_relative_paths_are_taken_from_the_working_directory(saved_run, tmp_path, monkeypatch):
  workdir, model, _ = saved_run
  monkeypatch.chdir(workdir.parent)
  restored = checkpointing.restore(workdir.name)
  for a, b in zip(leaves(nnx.state(restored)), leaves(nnx.state(model)), strict=True):
    np.testing.assert_array_equal(a, b)
  monkeypatch.chdir(tmp_path)
  saved = checkpointing.save_model("exported", model, tiny_config())
  assert saved == tmp_path / "exported" / "checkpoints"
  checkpointing.restore("exported")
