"""data_prep on real photos: records, splits, reruns, workers and bad input."""

import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader
from PIL import Image

import bad_inputs
from conftest import FIXTURES, REPO, SHARED_DATA, corpus_photos, kill_when, run_data_prep
from exif_jax.data import exif_attrs
from exif_jax.data import files
from exif_jax.data import records


def read_all(path: pathlib.Path) -> list[dict]:
  reader = ArrayRecordReader(os.fspath(path))
  try:
    return [records.decode(r) for r in reader.read_all()]
  finally:
    reader.close()


def dataset_contents(directory: pathlib.Path) -> dict[str, tuple]:
  """sha256 -> (split, patch pixel digests) over the unique photos of a dataset."""
  photos, patch_files = records.photo_index(directory)
  patches = [r for f in patch_files for r in read_all(pathlib.Path(f))]
  return {p.sha256: (p.split, tuple(hashlib.sha1(patches[i]["pixels"]).hexdigest()
                                    for i in p.patches)) for p in photos}


def test_records_keep_original_bytes_exif_and_lossless_crops(shards_dir):
  info = records.load_dataset_info(shards_dir)
  sources = corpus_photos()
  assert info["num_records"] == len(sources) == 33
  assert info["num_skipped"] == 0
  shard = records.complete_shards(shards_dir)[0]
  photo_records = read_all(shard.photos_path)
  patch_records = read_all(shard.patches_path)
  assert len(photo_records) == len(shard.photos)
  for photo_id, record in enumerate(photo_records[:5]):
    assert set(records.PHOTO_FIELDS) <= set(record)
    original = pathlib.Path(record["source"]).read_bytes()
    assert record["image"] == original
    assert record["sha256"] == hashlib.sha256(original).hexdigest()
    assert record["exif"] == exif_attrs.read_exif(original)
    pixels = np.asarray(Image.open(io.BytesIO(original)))
    assert (record["height"], record["width"]) == pixels.shape[:2]
    first = shard.photos[photo_id]["first_patch"]
    for k, (y, x, h, w) in enumerate(record["patches"]):
      patch = patch_records[first + k]
      assert patch["photo"] == photo_id
      np.testing.assert_array_equal(records.patch_pixels(patch), pixels[y:y + h, x:x + w])
      assert min(h, w) >= 128


def test_validation_holds_out_whole_camera_models(shards_dir):
  info = records.load_dataset_info(shards_dir)
  train, val = set(info["splits"]["train"]["cameras"]), set(info["splits"]["val"]["cameras"])
  assert train and val and not train & val
  # Every attribute value count covers all photos that have the tag.
  makes = info["attributes"]["Image Make"]
  assert sum(makes.values()) == info["num_records"]


def test_rerun_is_a_no_op(shards_dir):
  before = {p.name: p.stat().st_mtime_ns for p in shards_dir.iterdir()
            if p.suffix == ".array_record"}
  list_file = shards_dir.parent / "photos.txt"
  result = run_data_prep(list_file, shards_dir, "--patches_per_photo=4", "--val_fraction=0.25",
                         "--photos_per_shard=12", "--processes=2")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "wrote 0 of its 3 shards" in result.stderr
  after = {p.name: p.stat().st_mtime_ns for p in shards_dir.iterdir()
           if p.suffix == ".array_record"}
  assert after == before


def test_other_settings_on_an_existing_dataset_are_refused(shards_dir):
  list_file = shards_dir.parent / "photos.txt"
  result = run_data_prep(list_file, shards_dir, "--patches_per_photo=2", "--val_fraction=0.25",
                         "--num_shards=2", "--processes=2")
  assert result.returncode == 2
  assert result.stderr.splitlines()[-1] == (
      f"error: {shards_dir} holds shards written with other settings (num_shards: 3 then, 2 now; "
      "patches_per_photo: 4 then, 2 now); use a new --out")


def test_two_workers_write_the_same_records_as_one(tmp_path):
  photo_list = tmp_path / "photos.txt"
  photo_list.write_text("".join(f"{p}\n" for p in corpus_photos()[:24]))
  flags = ["--patches_per_photo=2", "--num_shards=4", "--processes=1", "--val_fraction=0.3"]
  single = tmp_path / "single"
  assert run_data_prep(photo_list, single, *flags).returncode == 0
  double = tmp_path / "double"
  first = run_data_prep(photo_list, double, *flags, "--num_workers=2", "--worker_index=0")
  assert first.returncode == 0, first.stderr[-2000:]
  assert not (double / records.DATASET_INFO).exists()  # Worker 1's shards are missing.
  second = run_data_prep(photo_list, double, *flags, "--num_workers=2", "--worker_index=1")
  assert second.returncode == 0, second.stderr[-2000:]
  assert sorted(p.name for p in double.glob("shard-*")) == [
      f"shard-0000{i}-of-00004.json" for i in range(4)]
  assert dataset_contents(double) == dataset_contents(single)
  assert len(dataset_contents(single)) == 24


def test_bad_inputs_are_skipped_with_reasons(tmp_path):
  folder = tmp_path / "inputs"
  expected = bad_inputs.make_corpus(folder, sorted((FIXTURES / "camera").glob("*"))[:3])
  edges = list((FIXTURES / "edge").iterdir())
  for edge in edges:
    shutil.copy(edge, folder / edge.name)
  progressive_camera_photo = "progressive_sony_dsc-p12.jpg"  # The one good edge fixture.
  out = tmp_path / "out"
  result = run_data_prep(folder, out, "--patches_per_photo=2", "--processes=2")
  assert result.returncode == 1, result.stderr[-3000:]  # Some inputs skipped, the rest written.
  info = records.load_dataset_info(out)
  reasons = {pathlib.Path(s["source"]).name: s["reason"] for s in info["skipped"]}
  assert len(reasons) == len(info["skipped"])  # Each bad input reported once.
  for name, want in expected.items():
    shown = files.display_name(name)
    if want.prep is None:
      assert shown not in reasons, (name, reasons[shown])
    else:
      assert want.prep in reasons[shown], (name, reasons.get(shown))
  accepted = [name for name, want in expected.items() if want.prep is None]
  assert info["num_records"] == len(accepted) + 1
  bad_edges = {p.name for p in edges} - {progressive_camera_photo}
  assert bad_edges <= set(reasons), "the other edge fixtures are too small or lack EXIF"
  assert progressive_camera_photo not in reasons
  assert result.stderr.count("skipped ") == len(reasons)
  assert not list(out.glob(".*tmp*"))
  assert json.loads((out / records.DATASET_INFO).read_text()) == info
  photos, _ = records.photo_index(out)
  exif = {pathlib.Path(p.source).name: p.exif for p in photos}
  assert exif["overlong_exif.jpg"]["Image ImageDescription"].startswith("sha1:")
  assert exif["garbage_exif.jpg"]["Image Software"] == "[31mred"  # ASCII ends at NUL.
  assert "Caf" in exif["non_utf8_exif.jpg"]["Image Artist"]
  assert exif["rotated.jpg"]["Image Orientation"] == "Rotated 90 CW"


@pytest.mark.slow
@pytest.mark.shared_data
def test_every_shared_photo_becomes_a_record(tmp_path):
  photos_dir = SHARED_DATA / "photos"
  out = tmp_path / "all"
  result = run_data_prep(photos_dir, out, "--patches_per_photo=1", "--processes=2")
  assert result.returncode == 0, result.stderr[-3000:]
  info = records.load_dataset_info(out)
  manifest = (photos_dir / "MANIFEST.csv").read_text().splitlines()[1:]
  assert info["num_records"] == len(manifest) == 414
  assert info["skipped"] == []
  assert len(set(info["splits"]["train"]["cameras"]) | set(info["splits"]["val"]["cameras"])) > 200


def test_killed_worker_resumes_to_the_uninterrupted_result(tmp_path):
  photo_list = tmp_path / "photos.txt"
  photo_list.write_text("".join(f"{p}\n" for p in corpus_photos()[:30]))
  flags = [f"--photos={photo_list}", "--patches_per_photo=2", "--num_shards=5",
           "--processes=1", "--val_fraction=0.3"]
  reference = tmp_path / "reference"
  assert run_data_prep(photo_list, reference, *flags[1:]).returncode == 0
  killed = tmp_path / "killed"
  kill_when([sys.executable, "-m", "data_prep", *flags, f"--out={killed}"],
            lambda: any(killed.glob("shard-*.json")), timeout=120)
  complete = records.complete_shards(killed)
  assert 1 <= len(complete) < 5, "killed after the first shard and before the last"
  assert not (killed / records.DATASET_INFO).exists()
  partial, _ = records.photo_index(killed)  # Only complete shards are ever read.
  assert len(partial) == sum(len(s.photos) for s in complete)
  result = run_data_prep(photo_list, killed, *flags[1:])
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"wrote {5 - len(complete)} of its 5 shards" in result.stderr
  assert dataset_contents(killed) == dataset_contents(reference)
  assert not list(killed.glob(".*tmp*"))


CAMERA = sorted((FIXTURES / "camera").glob("*.jpg"))  # 12 photos of 12 camera models.


def prep_in(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  """`python -m data_prep` run from `cwd`, so a run that wrote into its current folder shows."""
  return subprocess.run([sys.executable, "-m", "data_prep", "--processes=1",
                         "--patches_per_photo=1", *args],
                        cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)},
                        capture_output=True, text=True, check=False)


@pytest.mark.parametrize("case", ["empty", "file", "under_a_file"])
def test_an_unusable_out_is_one_line_and_nothing_written(case, tmp_path):
  file = tmp_path / "file"
  file.write_text("a file")
  out, expected = {
      "empty": ("", "error: --out is empty: give an output folder"),
      "file": (file, f"error: --out {file}: not a folder"),
      "under_a_file": (file / "out", f"error: --out {file / 'out'}: {file} is not a folder"),
  }[case]
  result = prep_in(tmp_path, f"--photos={FIXTURES / 'camera'}", f"--out={out}")
  assert (result.returncode, result.stderr.splitlines()) == (2, [expected])
  assert sorted(tmp_path.iterdir()) == [file] and file.read_text() == "a file"


def test_more_shards_than_photos_are_one_photo_a_shard_and_a_rerun_agrees(tmp_path):
  out = tmp_path / "out"
  result = prep_in(tmp_path, f"--photos={FIXTURES / 'camera'}", f"--out={out}",
                   "--num_shards=1000")
  assert result.returncode == 0, result.stderr[-2000:]
  assert ("--num_shards 1000 is more than the 12 input files: writing 12 shards, one input a "
          "shard") in result.stderr
  assert [len(s.photos) for s in records.complete_shards(out)] == [1] * 12
  assert records.load_dataset_info(out)["num_shards"] == 12
  rerun = prep_in(tmp_path, f"--photos={FIXTURES / 'camera'}", f"--out={out}", "--num_shards=500")
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert "wrote 0 of its 12 shards" in rerun.stderr


@pytest.mark.parametrize("flag, warning", [
    ("--val_models=Apple iPhone 4,Nikon D70",
     "warning: --val_models 'Nikon D70': no camera of that Model or Make+Model among the 3 "
     "found; 1 held out for validation"),
    ("--val_models=Nikon D70",
     "warning: --val_models 'Nikon D70': no camera of that Model or Make+Model among the 3 "
     "found; 0 held out for validation"),
    ("--val_fraction=0.01",
     "warning: no camera model held out for validation: --val_fraction 0.01 of 3 camera "
     "models, chosen by hash, picked none; give --val_models or a larger --val_fraction"),
])
def test_a_validation_split_that_holds_out_less_than_asked_is_one_warning(flag, warning,
                                                                          tmp_path):
  photo_list = tmp_path / "photos.txt"
  photo_list.write_text("".join(f"{p}\n" for p in CAMERA[:3]))
  result = prep_in(tmp_path, f"--photos={photo_list}", f"--out={tmp_path / 'out'}", flag)
  assert result.returncode == 0, result.stderr[-2000:]
  assert [line for line in result.stderr.splitlines() if "warning" in line] == [warning]


def test_a_validation_split_as_asked_is_no_warning(tmp_path):
  photo_list = tmp_path / "photos.txt"
  photo_list.write_text("".join(f"{p}\n" for p in CAMERA[:3]))
  result = prep_in(tmp_path, f"--photos={photo_list}", f"--out={tmp_path / 'out'}",
                   "--val_models=Apple iPhone 4")
  assert result.returncode == 0 and "warning" not in result.stderr, result.stderr[-2000:]
