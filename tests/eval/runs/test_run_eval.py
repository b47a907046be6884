"""Evaluation on real images with a trained tiny checkpoint: the output contract end to end."""

import csv
import hashlib
import html
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import bad_inputs
from conftest import CHART_SPLICES, FIXTURES, PHOTOS, REPO, kill_when, run_module
from eval.data import datasets
from eval.data import synth_splices
from eval.localization import consistency
from eval.runs import results
from exif_jax.data import files
from exif_jax.training import checkpointing


@pytest.fixture(scope="module")
def splices(tmp_path_factory):
  """4 spliced + 2 authentic images between different cameras, at most 384 px."""
  out = tmp_path_factory.mktemp("splices") / "set"
  photos = sorted((FIXTURES / "camera").glob("*.jpg"))
  synth_splices.make_splices(photos, out, num_spliced=4, num_authentic=2, seed=0, max_size=384)
  return out


@pytest.mark.slow
def test_run_eval_writes_the_output_contract_and_resumes(tiny_stage2_run, splices, tmp_path):
  workdir, _ = tiny_stage2_run
  images = splices / "images"
  shutil.copytree(images, tmp_path / "images")
  (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG not really")
  out = tmp_path / "out"
  args = ["--checkpoint", str(workdir), "--images", str(tmp_path / "images"),
          "--masks", str(splices / "masks"), "--out", str(out), "--num_patches", "64"]
  first = run_module("eval.commands.run_eval", *args, status=1)
  assert "skipped" in first.stderr and "broken.png" in first.stderr
  examples = datasets.folder(splices)
  for example in examples:
    heat = np.load(out / "maps" / f"{example.stem}.npy")
    image = np.asarray(Image.open(example.image_path))
    assert heat.shape == image.shape[:2] and heat.dtype == np.float32
    assert np.isfinite(heat).all() and 0 <= heat.min() and heat.max() <= 1
    assert Image.open(out / "maps" / f"{example.stem}.png").size == image.shape[1::-1]
    attr = np.load(out / "attr_maps" / f"{example.stem}.npz")
    assert attr["maps"].shape[0] == 83
  scores = list(csv.DictReader((out / "scores.csv").open()))
  assert sorted(r["stem"] for r in scores) == sorted(e.stem for e in examples)
  metrics = json.loads((out / "metrics.json").read_text())
  for name in ("p-mAP", "pi_mcc@0.5", "pi_f1@best", "detection_mAP", "detection_auc"):
    assert 0 <= metrics[name] <= 1, name
  assert metrics["num_localization_images"] == 4
  page = (out / "report.html").read_text()
  assert all(e.stem in page for e in examples) and "broken" in page
  settings = json.loads((out / "settings.json").read_text())
  assert settings["num_patches"] == 64 and len(settings["model_sha256"]) == 64
  assert settings["model_sha256"][:16] in page and "num_patches 64" in page

  # Rerun after losing one image's result: only that image and the skipped one (a skip is
  # never final) are computed again.
  (out / "results" / f"{examples[0].stem}.json").unlink()
  second = run_module("eval.commands.run_eval", *args, status=1)
  assert f"2 of {len(examples) + 1} images to do" in second.stderr
  assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)

  # Another model or other options never mix their maps into these.
  results = sorted((out / "results").iterdir())
  for changed, flag_args in (("num_patches", args[:-1] + ["32"]),
                             ("model_sha256", args[2:])):  # The bundled model.
    refused = subprocess.run([sys.executable, "-m", "eval.commands.run_eval", *flag_args],
                             cwd=REPO, capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    last = refused.stderr.splitlines()[-1]
    assert last.startswith(f"error: {out} holds results made with other settings (")
    assert f"{changed}: " in last  # The bundled model also brings its calibration.
    assert "Traceback" not in refused.stderr
  assert sorted((out / "results").iterdir()) == results
  assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)


def test_localize_reports_each_bad_input_and_goes_on(tiny_stage2_run, tmp_path):
  workdir, _ = tiny_stage2_run
  folder = tmp_path / "in"
  folder.mkdir()
  shutil.copy(FIXTURES / "camera" / "casio_ex-s1.jpg", folder)
  Image.new("RGB", (300, 200), (120, 130, 140)).save(folder / "flat.png")
  Image.new("RGB", (100, 60)).save(folder / "tiny.png")
  (folder / "text.jpg").write_text("not an image")
  out = tmp_path / "out"
  result = run_module("eval.commands.localize", str(folder), str(tmp_path / "missing.jpg"),
                      "--checkpoint", str(workdir), "--out", str(out), "--num_patches", "32",
                      status=1)
  # Named by their paths relative to the folder of all inputs, tmp_path.
  lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:-1]}
  assert "no signal" in lines["in/flat.png"]
  assert "smaller than" in lines["in/tiny.png"]
  assert "not an image" in lines["in/text.jpg"]
  assert "no such file" in lines["missing.jpg"]
  assert float(lines["in/casio_ex-s1.jpg"].split()[1]) >= 0
  np.testing.assert_array_equal(np.load(out / "maps" / "in%2Fflat.png.npy"), 0)
  page = (out / "report.html").read_text()
  assert "no signal" in page and "No map: " in page


def test_a_stage1_checkpoint_is_refused_in_one_line(tiny_run, tmp_path):
  """Its same-image classifier is untrained: its maps would be noise, not a weak answer."""
  workdir, _ = tiny_run
  for module, inputs in (("eval.commands.localize", [str(FIXTURES / "camera")]),
                         ("eval.commands.run_eval", ["--images", str(FIXTURES / "camera")])):
    result = run_module(module, *inputs, "--checkpoint", str(workdir),
                        "--out", str(tmp_path / module), status=2)
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {workdir}: a stage-1 checkpoint, whose same-image classifier is untrained")
    assert "Traceback" not in result.stderr and not (tmp_path / module / "results").exists()


@pytest.mark.slow
def test_killed_run_eval_computes_only_the_missing_images(tiny_stage2_run, splices, tmp_path):
  workdir, _ = tiny_stage2_run
  args = ["--checkpoint", str(workdir), "--images", str(splices / "images"),
          "--masks", str(splices / "masks"), "--num_patches", "64"]
  reference = tmp_path / "reference"
  run_module("eval.commands.run_eval", *args, "--out", str(reference))
  killed = tmp_path / "killed"
  kill_when([sys.executable, "-m", "eval.commands.run_eval", *args, "--out", str(killed)],
            lambda: any(killed.glob("results/*.json")), timeout=300)
  done = {p.name: p.stat().st_mtime_ns for p in killed.glob("results/*.json")}
  total = len(list((splices / "images").iterdir()))
  assert 1 <= len(done) < total, "killed after the first image and before the last"
  rerun = run_module("eval.commands.run_eval", *args, "--out", str(killed))
  assert f"{total - len(done)} of {total} images to do ({len(done)} already done)" in rerun.stderr
  assert {p.name: p.stat().st_mtime_ns for p in killed.glob("results/*.json")
          if p.name in done} == done
  for example in datasets.folder(splices):
    np.testing.assert_array_equal(np.load(killed / "maps" / f"{example.stem}.npy"),
                                  np.load(reference / "maps" / f"{example.stem}.npy"))
  assert (killed / "scores.csv").read_text() == (reference / "scores.csv").read_text()
  assert (json.loads((killed / "metrics.json").read_text())
          == json.loads((reference / "metrics.json").read_text()))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """(folder, file name -> bad_inputs.Expected): every bad kind beside two camera photos."""
  folder = tmp_path_factory.mktemp("corpus") / "in"
  goods = [FIXTURES / "camera" / "casio_ex-s1.jpg", FIXTURES / "camera" / "pentax_ist_dl.jpg"]
  return folder, bad_inputs.make_corpus(folder, goods)


@pytest.mark.parametrize("module", ["eval.commands.run_eval", "eval.commands.localize"])
@pytest.mark.slow
def test_every_bad_input_is_reported_once_and_every_good_one_mapped(module, corpus,
                                                                     tiny_stage2_run, tmp_path):
  folder, expected = corpus
  workdir, _ = tiny_stage2_run
  out = tmp_path / "out"
  inputs = ["--images", str(folder)] if module == "eval.commands.run_eval" else [str(folder)]
  result = run_module(module, *inputs, "--checkpoint", str(workdir), "--out", str(out),
                      "--num_patches", "16", status=1)
  reasons = {results.storage_name(name): want.evaluate for name, want in expected.items()}
  assert len(reasons) == len(expected)  # Every file its own name: same_stem.jpg, .png, -1.jpg.
  records = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
  by_stem = {r["stem"]: r for r in records}
  assert len(by_stem) == len(records) and set(by_stem) == set(reasons)  # loop_dir not walked.
  for name, want in expected.items():
    record = by_stem[results.storage_name(name)]
    assert record["image"] == files.display_name(folder / name)
    if want.evaluate is None:
      assert "error" not in record, record
      assert record["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
      heat = np.load(out / "maps" / f"{record['stem']}.npy")
      assert heat.shape == Image.open(folder / name).size[::-1], name
      assert np.isfinite(heat).all() and 0 <= record["score"] <= 1, name
    else:
      assert want.evaluate in record["error"], record
      shown = files.display_name(folder / name)
      assert result.stderr.count(f"skipped {shown}: ") == 1, name
  assert result.stderr.count("skipped ") == sum(r is not None for r in reasons.values())
  assert "\x1b" not in result.stderr + result.stdout  # Names print their escape codes as text.
  assert np.load(out / "maps" / "rotated.jpg.npy").shape == (240, 320)  # Stored orientation.
  assert not by_stem["sixteen_bit.png"]["no_signal"]  # Its top 8 bits, not a clipped white.
  page = (out / "report.html").read_text(encoding="utf-8")
  assert all(f'id="{html.escape(stem)}"' in page for stem in reasons)
  scores = {row["stem"] for row in csv.DictReader((out / "scores.csv").open())}
  # The stored names exactly (a leading '-' included: %-encoded ASCII is never run).
  assert scores == {stem for stem, reason in reasons.items() if reason is None}
  if module == "eval.commands.localize":
    assert all(files.display_name(name) in result.stdout for name in expected)


PEAK_RSS_4000X3000 = 1.5 * 2**30  # The bound the README states.
# Runs a module as __main__ and, at exit, writes the process's peak RSS to argv[1]. VmHWM
# counts this program's memory only; getrusage's maxrss would also count the memory of the
# test process it was forked from.
_PEAK_RSS_WRAPPER = """
import atexit, runpy, sys
out, module = sys.argv[1:3]
def record():
  status = open("/proc/self/status").read()
  open(out, "w").write(status.split("VmHWM:")[1].split()[0])
atexit.register(record)
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def localize_peak_rss(tmp_path: pathlib.Path, width: int, height: int, *flags: str
                      ) -> tuple[pathlib.Path, dict, int]:
  """Localizes a width x height image of real camera texture (a 512x384 photo tiled) with the
  bundled model: (OUT, its result record, the process's peak RSS in bytes)."""
  photo = np.asarray(Image.open(PHOTOS / "Nikon_CoolPix_995_DSCN1323.JPG"))  # 512x384.
  tiled = np.tile(photo, (height // 384 + 1, width // 512 + 1, 1))[:height, :width]
  tmp_path.mkdir(exist_ok=True)
  Image.fromarray(tiled).save(tmp_path / "photo.jpg", quality=95)
  out, peak_file = tmp_path / "out", tmp_path / "peak_kib"
  result = subprocess.run([sys.executable, "-c", _PEAK_RSS_WRAPPER, str(peak_file),
                           "eval.commands.localize", str(tmp_path / "photo.jpg"), "--out", str(out),
                           *flags], cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads((out / "results" / "photo.jpg.json").read_text())
  return out, record, int(peak_file.read_text()) * 1024


def test_a_4000x3000_photo_stays_under_the_stated_peak_memory(tmp_path):
  out, record, peak = localize_peak_rss(tmp_path, 4000, 3000)
  assert np.load(out / "maps" / "photo.jpg.npy").shape == (3000, 4000)
  assert 400 <= record["num_patches"] <= 600
  assert peak < PEAK_RSS_4000X3000, f"{peak / 2**30:.2f} GiB"


# What two runs of one localize differ by in peak RSS: the runtime's threads and compilations.
# Measured up to 60 MiB apart on one machine; the environment moves both runs alike (peaks of
# 860 to 1090 MiB on two installs of the same requirements).
PEAK_RSS_SPREAD = 128 * 2**20


@pytest.mark.slow
def test_per_attribute_maps_of_1500_patches_stay_within_the_pair_memory(tmp_path):
  """All pairs' [N, N, 83] P(same value) would be 700 MiB at N = 1500; the per-attribute maps
  need only its means over the dominant region, reduced block by block, so they add at most
  the pair memory to a run without them."""
  pair_memory_mb = 64
  flags = ("--num_patches", "1500", "--pair_memory_mb", str(pair_memory_mb))
  out, record, peak = localize_peak_rss(tmp_path / "with", 1600, 1200, *flags)
  assert 1400 <= record["num_patches"] <= 1600 and len(record["separating"]) == 3
  attribute_maps = np.load(out / "attr_maps" / "photo.jpg.npz")["maps"]
  assert attribute_maps.shape == (83, 96, 128) and np.isfinite(attribute_maps).all()
  out, _, without = localize_peak_rss(tmp_path / "without", 1600, 1200, *flags,
                                      "--noattr_maps")
  assert not (out / "attr_maps").exists()
  added = peak - without
  assert added < pair_memory_mb * 2**20 + PEAK_RSS_SPREAD, f"{added / 2**20:.0f} MiB"


def test_pair_chunks_do_not_change_the_matrix(tiny_run):
  _, model = tiny_run
  image = np.asarray(Image.open(sorted(PHOTOS.iterdir())[0]))[:400, :400]
  whole = consistency.ConsistencyModel(model)(image, num_patches=49)
  chunked_model = consistency.ConsistencyModel(model, pair_memory_bytes=1)
  assert chunked_model.rows_per_block(49) == chunked_model.mesh.size  # One row per device.
  chunked = chunked_model(image, num_patches=49)
  np.testing.assert_allclose(chunked.matrix, whole.matrix, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(whole.matrix, whole.matrix.T)
  assert ((0 <= whole.matrix) & (whole.matrix <= 1)).all()


def last_two_steps(workdir: pathlib.Path) -> list[pathlib.Path]:
  """The run's two latest step folders: two distinct models of one config."""
  return sorted((workdir / "checkpoints").iterdir(), key=lambda p: int(p.name))[-2:]


def test_an_ensemble_averages_its_members_matrices(tiny_run):
  """Two checkpoints of one run are two models; the ensemble's P(same) is their mean."""
  workdir, _ = tiny_run
  members = [checkpointing.restore(step) for step in last_two_steps(workdir)]
  image = np.asarray(Image.open(FIXTURES / "camera" / sorted(
      p.name for p in (FIXTURES / "camera").glob("*.jpg"))[0]))[:300, :300]
  models = [consistency.ConsistencyModel(m) for m in members]
  alone = [model(image, num_patches=36) for model in models]
  assert np.abs(alone[0].matrix - alone[1].matrix).max() > 1e-4  # Distinct members.
  ensemble = consistency.ConsistencyModel(members)
  both = ensemble(image, num_patches=36)
  np.testing.assert_allclose(both.matrix, (alone[0].matrix + alone[1].matrix) / 2, atol=1e-5)
  region = np.arange(len(both.coords)) % 3 == 0
  attributes = [model.attribute_means(result.projections, region)
                for model, result in zip(models, alone)]
  np.testing.assert_allclose(ensemble.attribute_means(both.projections, region),
                             (attributes[0] + attributes[1]) / 2, atol=1e-5)
  with pytest.raises(ValueError, match="differ in architecture"):
    consistency.ConsistencyModel([members[0], checkpointing.restore(checkpointing.BUNDLED_MODEL)])


@pytest.mark.slow
def test_repeated_checkpoints_localize_as_an_ensemble(tiny_stage2_run, splices, tmp_path):
  workdir, _ = tiny_stage2_run
  steps = last_two_steps(workdir)
  args = ["--checkpoint", str(steps[0]), "--checkpoint", str(steps[1]),
          "--images", str(splices / "images"), "--num_patches", "36"]
  run_module("eval.commands.run_eval", *args, "--out", str(tmp_path / "both"))
  run_module("eval.commands.run_eval", *args[2:], "--out", str(tmp_path / "last"))
  both, last = (json.loads((tmp_path / name / "settings.json").read_text())
                for name in ("both", "last"))
  assert both["ensemble_size"] == 2 and "ensemble_size" not in last
  assert both["model_sha256"] != last["model_sha256"]
  stems = sorted(p.name for p in (splices / "images").iterdir())  # Suffix included.
  assert sorted(p.stem for p in (tmp_path / "both" / "maps").glob("*.npy")) == stems
  assert any(not np.array_equal(np.load(tmp_path / "both" / "maps" / f"{stem}.npy"),
                                np.load(tmp_path / "last" / "maps" / f"{stem}.npy"))
             for stem in stems)
  # Trainings of other model configs cannot be averaged: one line naming both and the field.
  refused = subprocess.run(
      [sys.executable, "-m", "eval.commands.run_eval", *args[:2], "--checkpoint",
       str(checkpointing.BUNDLED_MODEL), *args[4:], "--out", str(tmp_path / "mixed")],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert refused.returncode == 2
  error = refused.stderr.strip().splitlines()[-1]
  assert error.startswith(f"error: {checkpointing.BUNDLED_MODEL}: cannot average with")
  assert "model.depth" in error or "model.width" in error
  missing = subprocess.run(
      [sys.executable, "-m", "eval.commands.run_eval", *args,
       "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "missing")],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert missing.returncode == 2
  assert missing.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path / 'none'}: no checkpoint (expected a workdir, its checkpoints/ folder "
      "or a step folder)")


def test_run_eval_prints_the_metrics_it_wrote(tmp_path):
  out = tmp_path / "out"
  result = run_module("eval.commands.run_eval", "--method", "noise", "--images",
                      str(CHART_SPLICES / "images"), "--masks", str(CHART_SPLICES / "masks"),
                      "--out", str(out))
  written = json.loads((out / "metrics.json").read_text())
  lines = result.stdout.splitlines()
  for name in ("p-mAP", "pixel_mAP", "mcc@best", "f1@best", "detection_mAP", "detection_auc"):
    assert f"{name:<14} {written[name]:.3f}" in lines
  assert (f"{'images':<14} {written['num_localization_images']} with a two-class mask, "
          f"{written['num_detection_images']} with a known label") in lines
