"""The paper's baselines (4.2) end to end: trained by the trainer's command line on the real
shards with their tiny configs, evaluated through the eval output contract, and tabulated with
the noise method by eval.reporting.paper_table."""

import json

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from configs import camera_classification
from configs import cpu
from configs import image_consistency
from configs import tiny
from conftest import CHART_SPLICES, REPO, run_module
from eval.localization import camera_classifier
from eval.localization import localizer as localizer_lib
from eval.localization import patch_grid
from exif_jax.data import records
from exif_jax.training import checkpointing
from exif_jax.training import stages
from exif_jax.training import train


def train_baseline(config_file, shards, workdir):
  """(workdir, saved config, restored model) of configs/<config_file>:tiny, 3 steps, trained
  by the trainer's command line."""
  run_module("exif_jax.main", f"--config={REPO / 'configs' / config_file}:tiny",
             f"--workdir={workdir}", f"--config.data.data_dir={shards}",
             "--config.train.steps=3")
  return workdir, checkpointing.restore_config(workdir), checkpointing.restore(workdir)


def eval_examples(out, *args):
  """OUT of `eval.commands.run_eval` over the chart splices (a tiny benchmark with masks)."""
  run_module("eval.commands.run_eval", "--images", str(CHART_SPLICES / "images"), "--masks",
             str(CHART_SPLICES / "masks"), "--out", str(out), "--num_patches", "32", *args)
  return out


@pytest.fixture(scope="module")
def camera_run(shards_dir, tmp_path_factory):
  return train_baseline("camera_classification.py", shards_dir,
                        tmp_path_factory.mktemp("camera_classification"))


@pytest.fixture(scope="module")
def image_run(shards_dir, tmp_path_factory):
  return train_baseline("image_consistency.py", shards_dir,
                        tmp_path_factory.mktemp("image_consistency"))


@pytest.fixture(scope="module")
def camera_eval(camera_run, tmp_path_factory):
  return eval_examples(tmp_path_factory.mktemp("camera_eval") / "out",
                       "--checkpoint", str(camera_run[0]))


@pytest.fixture(scope="module")
def image_eval(image_run, tmp_path_factory):
  return eval_examples(tmp_path_factory.mktemp("image_eval") / "out",
                       "--checkpoint", str(image_run[0]))


def changed_groups(trained, config):
  """The top-level parameter groups (backbone, head, ...) training changed from the
  initialisation of `config`."""
  initial = dict(nnx.to_flat_state(nnx.state(train.create_model(config), nnx.Param)))
  return {path[0] for path, value in nnx.to_flat_state(nnx.state(trained, nnx.Param))
          if not np.array_equal(np.asarray(value[...]), np.asarray(initial[path][...]))}


def last_validation(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line) for line in lines if "val/mean_auc" in line][-1]


@pytest.mark.parametrize("module,stage", [(camera_classification, "camera_classification"),
                                          (image_consistency, "image_consistency")])
def test_baseline_configs_take_the_recipe_of_their_base(module, stage):
  for base, reference in (("tiny", tiny), ("cpu", cpu)):
    config, expected = module.get_config(base), reference.get_config()
    assert config.stage == stage
    assert config.model == expected.model and config.train.steps == expected.train.steps
    assert config.train.post_processing_weight == 0.0  # The baselines have no auxiliary head,
    assert config.data.virtual_camera_fraction == 0.0  # nor virtual cameras.
  assert module.get_config().model.depth == 50  # The paper's ResNet-50 by default.
  with pytest.raises(ValueError, match="'resnet9': expected one of"):
    module.get_config("resnet9")
  assert image_consistency.get_config().data.same_image_fraction == 0.5


def test_camera_classifier_learns_the_training_photos_cameras(camera_run, shards_dir):
  workdir, config, model = camera_run
  photos, _ = records.photo_index(shards_dir, "train")
  cameras = sorted({photo.camera for photo in photos})
  assert len(cameras) >= 2 and model.camera_names == tuple(cameras)
  assert config.stage == "camera_classification" and config.model.camera_names == cameras
  # The backbone, feature and camera head learn; the pair head and classifier are not used.
  assert changed_groups(model, config) == {"backbone", "feature", "camera"}
  # Validation cameras are held out: it scores whether two patches' cameras agree.
  assert 0 <= last_validation(workdir)["val/auc/same_camera"] <= 1


def test_camera_loss_reads_only_each_patchs_camera(camera_run):
  _, config, model = camera_run
  batch = train.random_batch(config, 4)
  batch["camera_a"][:], batch["camera_b"][:] = 0, 1
  loss = float(stages.loss_and_outputs(model, batch, config)[0])
  batch["labels"][:], batch["same_image"][:] = 0, 1
  assert float(stages.loss_and_outputs(model, batch, config)[0]) == loss
  batch["camera_a"][:] = 1
  assert float(stages.loss_and_outputs(model, batch, config)[0]) != loss
  batch["camera_a"][:], batch["camera_b"][:] = -1, -1  # Cameras without a class: no loss.
  assert float(stages.loss_and_outputs(model, batch, config)[0]) == 0.0


def test_patch_heat_splits_at_one_half_and_ranks_within_each_side():
  probabilities = np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.5, 0.2, 0.3],
                            [0.2, 0.7, 0.1]])
  heat, agree = camera_classifier.patch_heat(probabilities)
  # Camera 0 is the mode; the last patch predicts camera 1.
  np.testing.assert_allclose(heat, [0.2, 0.3, 0.25, 0.9])
  assert not agree
  heat, agree = camera_classifier.patch_heat(probabilities[:3])
  assert agree and heat.max() < 0.5
  # A tie for the mode goes to the lower class.
  np.testing.assert_allclose(camera_classifier.patch_heat(np.array([[0.6, 0.4], [0.4, 0.6]]))[0],
                             [0.2, 0.8])


def test_camera_localizer_maps_each_patchs_heat(camera_run):
  _, _, model = camera_run
  image = np.asarray(Image.open(CHART_SPLICES / "images" / "spliced_00000.png").convert("RGB"))
  image = image[:384, :384]
  localizer = camera_classifier.CameraLocalizer(model, localizer_lib.Options(stride=128))
  result = localizer(image)
  coords = patch_grid.grid_coords(image.shape[:2], stride=128)  # 3 x 3, no overlap.
  heat, agree = camera_classifier.patch_heat(
      localizer.probabilities(patch_grid.cut_patches(image, coords)))
  assert result.no_signal == agree and result.num_patches == 9
  for (y, x), value in zip(coords, np.zeros(9) if agree else heat):
    np.testing.assert_allclose(result.map[y:y + 128, x:x + 128], value, atol=1e-6)
  assert result.score == pytest.approx(result.map.mean())
  # Identical patches predict one camera: untampered, map and score 0.
  flat = localizer(np.full((256, 384, 3), 120, np.uint8))
  assert flat.no_signal and flat.score == 0 and not flat.map.any()


def test_camera_classifier_evaluates_through_the_output_contract(camera_run, camera_eval,
                                                                  tmp_path):
  settings = json.loads((camera_eval / "settings.json").read_text())
  assert settings["method"] == "camera_classification" and settings["num_patches"] == 32
  for mask in (CHART_SPLICES / "masks").iterdir():
    heat = np.load(camera_eval / "maps" / f"{mask.stem}.npy")
    assert heat.shape == np.asarray(Image.open(mask)).shape[:2]
    assert heat.min() >= 0 and heat.max() <= 1
  metrics = json.loads((camera_eval / "metrics.json").read_text())
  assert metrics["num_localization_images"] == 4 and 0 <= metrics["p-mAP"] <= 1
  assert not (camera_eval / "attr_maps").exists()
  workdir = str(camera_run[0])
  image = str(CHART_SPLICES / "images" / "spliced_00000.png")
  shown = run_module("eval.commands.localize", image, "--checkpoint", workdir, "--out",
                     str(tmp_path / "one"), "--num_patches", "32")
  assert shown.stdout.splitlines()[1].startswith("spliced_00000.png")
  refused = run_module("eval.commands.localize", image, "--checkpoint", workdir, "--out",
                       str(tmp_path / "ncuts"), "--ncuts", status=2)
  assert "a camera classifier gives no consistency matrix: drop --ncuts" in refused.stderr


def test_image_consistency_trains_the_whole_network_on_same_image_labels(image_run):
  workdir, config, model = image_run
  assert config.stage == "image_consistency"
  assert model.camera is None and model.post_processing is None
  assert changed_groups(model, config) == {"backbone", "feature", "head", "classifier"}
  batch = train.random_batch(config, 4)
  loss = float(stages.loss_and_outputs(model, batch, config)[0])
  batch["labels"][:] = 1 - batch["labels"]  # No EXIF attribute is a target.
  assert float(stages.loss_and_outputs(model, batch, config)[0]) == loss
  batch["same_image"][:] = 1 - batch["same_image"]
  assert float(stages.loss_and_outputs(model, batch, config)[0]) != loss
  assert 0 <= last_validation(workdir)["val/auc/same_image"] <= 1


def test_image_consistency_evaluates_like_the_exif_model(image_eval):
  settings = json.loads((image_eval / "settings.json").read_text())
  # The consistency matrix and Mean Shift, without per-attribute maps: its 83 head outputs
  # are hidden units.
  assert "method" not in settings and settings["attribute_maps"] is False
  assert not (image_eval / "attr_maps").exists()
  metrics = json.loads((image_eval / "metrics.json").read_text())
  assert metrics["num_detection_images"] == 6 and 0 <= metrics["detection_mAP"] <= 1


def test_paper_table_shows_each_runs_metrics(camera_eval, image_eval, tmp_path):
  outs = {"Noise": eval_examples(tmp_path / "noise", "--method", "noise"),
          "Camera Classification": camera_eval, "Image-Consistency": image_eval}
  runs = [arg for name, out in outs.items() for arg in ("--run", f"{name}@Examples={out}")]
  table = json.loads(run_module("eval.reporting.paper_table", *runs, "--format", "json").stdout)
  assert table["methods"] == list(outs) and table["datasets"] == ["Examples"]
  text = run_module("eval.reporting.paper_table", *runs).stdout.splitlines()
  for name, out in outs.items():
    metrics = json.loads((out / "metrics.json").read_text())
    expected = [metrics[key] for key in ("detection_mAP", "p-mAP", "mcc@0.5", "f1@0.5")]
    cell = table["table"][name]["Examples"]
    assert [cell[column] for column in ("mAP", "p-mAP", "MCC", "F1")] == expected
    row = next(line for line in text if line.startswith(name))
    assert row.split()[-4:] == [f"{value:.3f}" for value in expected]
  best = json.loads(run_module("eval.reporting.paper_table", *runs, "--threshold", "best",
                               "--format", "json").stdout)
  assert best["table"]["Noise"]["Examples"]["MCC"] == json.loads(
      (outs["Noise"] / "metrics.json").read_text())["mcc@best"]
  markdown = run_module("eval.reporting.paper_table", *runs, "--format", "markdown").stdout
  assert markdown.startswith("| method | Examples mAP | Examples p-mAP | Examples MCC |")


@pytest.mark.parametrize("run,message", [
    ("Noise=out", "--run 'Noise=out': expected METHOD@DATASET=OUT"),
    ("Noise@Examples={missing}", "metrics.json: missing; evaluate with --masks or --dataset"),
])
def test_paper_table_refuses_a_bad_run_in_one_line(run, message, tmp_path):
  result = run_module("eval.reporting.paper_table", "--run", run.format(missing=tmp_path), status=2)
  assert message in result.stderr.splitlines()[-1] and "Traceback" not in result.stderr
