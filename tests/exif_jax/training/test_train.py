"""The training loop end to end on real shards with the tiny config."""

import json
import shutil

import numpy as np
import optax
import pytest
from flax import nnx

from configs import cpu
from conftest import assert_resumes_exactly, params
from conftest import tiny_config, tiny_stage2_config
from exif_jax.training import checkpointing
from exif_jax.training import stages
from exif_jax.training import train


@pytest.fixture
def uninterrupted(tiny_run):
  return tiny_run


def test_resumed_run_equals_uninterrupted_run(shards_dir, tmp_path, uninterrupted):
  assert_resumes_exactly(lambda **steps: tiny_config(shards_dir, **steps), uninterrupted[1],
                         tmp_path)


def test_cpu_hours_add_up_over_resumes(shards_dir, tmp_path):
  """The resumed run continues from the CPU-hours logged at or before its checkpoint; a value
  logged after it (steps done again) is not counted twice."""
  train.train_and_evaluate(tiny_config(shards_dir, steps=4), str(tmp_path))
  metrics = tmp_path / "metrics.jsonl"
  first = [json.loads(line) for line in metrics.read_text().splitlines()]
  hours = [r[train.CPU_HOURS] for r in first if train.CPU_HOURS in r]
  assert len(hours) == 2 and 0 < hours[0] < hours[1] < 0.1
  with metrics.open("a") as f:  # As if earlier runs had used 100 hours, and a lost step 5.
    f.write(json.dumps({"step": 4, train.CPU_HOURS: 100.0}) + "\n")
    f.write(json.dumps({"step": 5, train.CPU_HOURS: 1000.0}) + "\n")
  train.train_and_evaluate(tiny_config(shards_dir), str(tmp_path))
  logged = [json.loads(line) for line in metrics.read_text().splitlines()]
  step_six = [r[train.CPU_HOURS] for r in logged if r["step"] == 6 and train.CPU_HOURS in r]
  assert len(step_six) == 1 and 100.0 < step_six[0] < 100.1


def test_logs_and_validation_accuracy(uninterrupted):
  workdir, _ = uninterrupted
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines]
  assert [r["step"] for r in records if "train/loss" in r] == [2, 4, 6]
  val = [r for r in records if "val/mean_accuracy" in r]
  assert [r["step"] for r in val] == [3, 6]
  assert 0.0 <= val[-1]["val/mean_auc"] <= 1.0
  for name in ("val/accuracy/jpeg_quality", "val/accuracy/blur", "val/accuracy/resize",
               "val/auc/jpeg_quality", "val/auc/blur", "val/auc/resize"):
    assert 0.0 <= val[-1][name] <= 1.0
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))


def test_restore_gives_the_trained_model_in_eval_mode(uninterrupted):
  workdir, reference = uninterrupted
  restored = checkpointing.restore(workdir)
  for a, b in zip(params(restored), params(reference), strict=True):
    np.testing.assert_array_equal(a, b)
  assert all(bn.use_running_average for _, bn in nnx.iter_graph(restored)
             if isinstance(bn, nnx.BatchNorm))


def test_incompatible_checkpoint_is_refused(shards_dir, uninterrupted):
  workdir, _ = uninterrupted
  config = tiny_config(shards_dir, steps=8)
  config.model.width = 8
  with pytest.raises(ValueError, match="model.width: checkpoint 4, config 8"):
    train.train_and_evaluate(config, str(workdir))


def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(shards_dir, tmp_path,
                                                                     uninterrupted, monkeypatch):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted[0], workdir)
  # A NaN learning rate in the config is refused before training; this one reaches the step.
  monkeypatch.setattr(train, "learning_rate", lambda _: optax.constant_schedule(np.nan))
  config = tiny_config(shards_dir, steps=8)
  with pytest.raises(FloatingPointError, match=r"parameters are not finite \(loss .*\) after "
                     r"step 7; stopped without saving it. The last good checkpoint is step 6"):
    train.train_and_evaluate(config, str(workdir))
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4", "6"]
  assert all(np.isfinite(p).all() for p in params(checkpointing.restore(workdir)))


def test_stage_one_trains_the_post_processing_head_derived_from_the_data(shards_dir,
                                                                         uninterrupted):
  workdir, model = uninterrupted
  assert model.post_processing_classes == (7, 6, 5)  # The tiny config's sets.
  # Saved with the run: restore needs no data config to rebuild the head.
  assert checkpointing.restore_config(workdir).model.post_processing_classes == [7, 6, 5]
  initial = train.create_model(tiny_config(shards_dir))
  assert not np.array_equal(model.post_processing.kernel[...], initial.post_processing.kernel[...])
  config = tiny_config(shards_dir)
  config.data.blur_sigmas = (0.0, 2.0)
  assert train.create_model(config).post_processing_classes == (7, 2, 5)
  with pytest.raises(ValueError, match=r"model.post_processing_classes: checkpoint \[7, 6, 5\], "
                                       r"config \[7, 2, 5\]"):
    train.train_and_evaluate(config, str(workdir))
  config.train.post_processing_weight = 0.0
  assert train.create_model(config).post_processing is None
  config.model.post_processing_classes = (7, 2, 5)
  with pytest.raises(ValueError, match=r"post_processing_classes=\(7, 2, 5\): derived from"):
    train.create_model(config)


def test_stage_two_trains_only_the_classifier(shards_dir, tmp_path, uninterrupted):
  stage1_dir, stage1 = uninterrupted
  config = tiny_stage2_config(shards_dir, stage1_dir, steps=3)
  stage2 = train.train_and_evaluate(config, str(tmp_path))
  before, after = nnx.state(stage1, nnx.Param), nnx.state(stage2, nnx.Param)
  for path, value in nnx.to_flat_state(after):
    unchanged = np.array_equal(np.asarray(value[...]), np.asarray(
        dict(nnx.to_flat_state(before))[path][...]))
    assert unchanged != ("classifier" in path), path
  lines = (tmp_path / "metrics.jsonl").read_text()
  assert "val/accuracy/same_image" in lines



def test_learning_rate_warms_up_then_stays():
  config = cpu.get_config()  # Warm-up 200 of 4000 steps, peak 1e-3.
  peak, warmup, steps = (config.train.learning_rate, config.train.warmup_steps,
                         config.train.steps)
  schedule = train.learning_rate(config)
  assert float(schedule(0)) == 0.0
  np.testing.assert_allclose(float(schedule(warmup // 2)), peak / 2, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(warmup)), peak, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(steps)), peak, rtol=1e-6)
  config.train.warmup_steps = 0
  assert float(train.learning_rate(config)(0)) == peak


@pytest.mark.slow
def test_exif_naming_head_learns_from_the_photos_with_a_named_value(shards_dir, tmp_path):
  config = tiny_config(shards_dir, steps=3)
  config.model.named_exif_tags = ("Image Make",)
  model = train.train_and_evaluate(config, str(tmp_path))
  initial = train.create_model(config)
  assert not np.array_equal(model.exif_naming.kernel[...], initial.exif_naming.kernel[...])
  last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
  assert 0 <= last["val/named_accuracy/Image Make"] <= 1
  # Patches whose photo has no named value add no loss.
  batch = train.random_batch(config, 4)
  batch["named_a"][:], batch["named_b"][:] = -1, -1
  loss = float(stages.loss_and_outputs(model, batch, config)[0])
  config.train.named_exif_weight = 0.0
  assert loss == float(stages.loss_and_outputs(model, batch, config)[0])
  config.train.named_exif_weight = 1.0
  batch["named_a"][:] = 0
  assert float(stages.loss_and_outputs(model, batch, config)[0]) > loss
  config.model.named_exif_tags = ("Lens Colour",)
  with pytest.raises(ValueError, match=r"\['Lens Colour'\] not among the EXIF tags"):
    train.train_and_evaluate(config, str(tmp_path / "unknown"))
