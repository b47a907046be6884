"""Synthetic splices from the fixture camera photos: cameras, exact masks, determinism, CLI."""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, REPO, kill_when
from eval.data import datasets
from eval.data import synth_splices
from exif_jax.data import exif_attrs

PHOTOS = FIXTURES / "camera"  # 12 photos, 12 camera models, 640x480 or 480x640.
SETTINGS = dict(num_spliced=8, num_authentic=4, max_size=256)


def make(out: pathlib.Path, seed: int = 0, **options) -> pathlib.Path:
  synth_splices.make_splices(PHOTOS, out, seed=seed, **{**SETTINGS, **options})
  return out


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> pathlib.Path:
  return make(tmp_path_factory.mktemp("synth") / "out")


def manifest(out: pathlib.Path) -> list[dict[str, str]]:
  with open(out / "manifest.csv", newline="") as f:
    return list(csv.DictReader(f))


def pixels(path) -> np.ndarray:
  return np.asarray(Image.open(path).convert("RGB"))


def camera_of(path: str) -> str:
  return exif_attrs.camera_id(exif_attrs.read_exif(pathlib.Path(path).read_bytes()))


def host_crop(row: dict[str, str]) -> np.ndarray:
  y, x, h, w = (int(row[k]) for k in ("crop_y", "crop_x", "height", "width"))
  return pixels(row["host_source"])[y:y + h, x:x + w]


def test_each_splice_joins_two_camera_models_read_from_the_sources_exif(made):
  rows = manifest(made)
  spliced = [r for r in rows if r["spliced"] == "1"]
  assert len(spliced) == 8 and len(rows) == 12
  for row in spliced:
    assert camera_of(row["host_source"]) == row["host_camera"]
    assert camera_of(row["donor_source"]) == row["donor_camera"]
    assert row["host_camera"] != row["donor_camera"]
  assert len({r["shape"] for r in spliced}) >= 2
  # Hosts are not reused before every photo has served once.
  assert len({r["host_source"] for r in rows}) == 12


def test_mask_is_exactly_the_pasted_donor_pixels(made):
  for row in manifest(made):
    if row["spliced"] != "1":
      continue
    stem = row["stem"]
    image = pixels(made / "images" / f"{stem}.png")
    mask_values = np.asarray(Image.open(made / "masks" / f"{stem}.png"))
    assert set(np.unique(mask_values)) == {0, 255}
    mask = mask_values == 255
    host = host_crop(row)
    assert image.shape == host.shape and max(image.shape[:2]) <= 256
    assert int(row["crop_y"]) % 16 == 0 and int(row["crop_x"]) % 16 == 0
    # Outside the mask the host is untouched; inside, every pixel is the donor's.
    np.testing.assert_array_equal(image[~mask], host[~mask])
    y, x, h, w = (int(row[k]) for k in ("region_y", "region_x", "region_h", "region_w"))
    dy, dx = int(row["donor_y"]), int(row["donor_x"])
    donor = np.zeros_like(image)
    donor[y:y + h, x:x + w] = pixels(row["donor_source"])[dy:dy + h, dx:dx + w]
    assert not mask[:y].any() and not mask[y + h:].any()
    assert not mask[:, :x].any() and not mask[:, x + w:].any()
    np.testing.assert_array_equal(image[mask], donor[mask])
    changed = (image != host).any(axis=-1)
    assert not (changed & ~mask).any() and changed.mean() > 0.5 * mask.mean()
    assert float(row["spliced_fraction"]) == pytest.approx(mask.mean(), abs=1e-6)
    assert 0.05 <= mask.mean() <= 0.30


def test_authentic_images_are_host_crops_unchanged(made):
  for row in manifest(made):
    if row["spliced"] == "1":
      continue
    np.testing.assert_array_equal(pixels(made / "images" / f"{row['stem']}.png"), host_crop(row))
    assert not (made / "masks" / f"{row['stem']}.png").exists()
    assert row["donor_source"] == "" and float(row["spliced_fraction"]) == 0.0


def test_the_folder_loader_reads_the_output(made):
  examples = datasets.load("folder", made)
  rows = {r["stem"]: r for r in manifest(made)}
  assert [e.stem for e in examples] == sorted(rows)
  for example in examples:
    assert example.spliced == (rows[example.stem]["spliced"] == "1")
    if example.spliced:
      assert example.mask.mean() == pytest.approx(
          float(rows[example.stem]["spliced_fraction"]), abs=1e-6)


def files(out: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_splices(made, tmp_path):
  assert files(make(tmp_path / "again", seed=0)) == files(made)
  other = files(make(tmp_path / "other", seed=1))
  assert other.keys() == files(made).keys()
  assert other["manifest.csv"] != files(made)["manifest.csv"]
  assert other["images/spliced_00000.png"] != files(made)["images/spliced_00000.png"]


def test_camera_filters_and_errors(tmp_path):
  pair = ["Apple iPhone 4", "Canon PowerShot SX150 IS"]  # Make+Model, or Model alone.
  rows = synth_splices.make_splices(PHOTOS, tmp_path / "pair", num_spliced=3, num_authentic=2,
                                    seed=0, max_size=256, cameras=pair).rows
  used = {r[k] for r in rows for k in ("host_camera", "donor_camera") if k in r}
  assert used == {"appleiphone4", "canoncanonpowershotsx150is"}
  rows = synth_splices.make_splices(PHOTOS, tmp_path / "excluded", num_spliced=4,
                                    num_authentic=4, seed=0, max_size=256,
                                    exclude_cameras=pair).rows
  used = {r[k] for r in rows for k in ("host_camera", "donor_camera") if k in r}
  assert used and not used & {"appleiphone4", "canoncanonpowershotsx150is"}
  with pytest.raises(ValueError, match="2 camera models"):
    synth_splices.make_splices(PHOTOS, tmp_path / "one", num_spliced=1, num_authentic=0,
                               seed=0, cameras=pair[:1])
  with pytest.raises(FileExistsError, match="holds images made with other settings"):
    make(tmp_path / "pair")
  with pytest.raises(ValueError, match="no usable photo"):
    synth_splices.make_splices([FIXTURES / "edge" / "no_exif_minimal.jpg"], tmp_path / "none",
                               num_spliced=0, num_authentic=1, seed=0)


def test_cli_holds_out_the_cameras_of_a_dataset_info_split(tmp_path):
  info = tmp_path / "dataset_info.json"
  val = ["casiocomputerco.,ltd.ex-s1", "pentaxcorporationpentax*istdl", "samsunggt-i9000"]
  info.write_text(json.dumps({"splits": {"train": {"cameras": ["appleiphone4"]},
                                         "val": {"cameras": val}}}))
  out = tmp_path / "out"
  command = [sys.executable, "-m", "eval.data.synth_splices", f"--photos={PHOTOS}", f"--out={out}",
             "--num_spliced=3", "--num_authentic=2", "--seed=5", "--max_size=128",
             f"--cameras_from={info}", "--split=val"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "3 spliced and 2 authentic images from 3 camera models" in result.stdout
  rows = manifest(out)
  assert {r["host_camera"] for r in rows} | {r["donor_camera"] for r in rows} - {""} <= set(val)
  assert {e.stem for e in datasets.load("folder", out)} == {r["stem"] for r in rows}
  with pytest.raises(ValueError, match="no split 'test'; it has train, val"):
    synth_splices.cameras_from_info(info, "test")


def test_pipes_and_huge_files_are_skipped_without_reading_them(tmp_path):
  """A FIFO would block a read forever; a sparse file of gigabytes would fill memory."""
  folder = tmp_path / "in"
  folder.mkdir()
  good = sorted(PHOTOS.glob("*.jpg"))[:2]
  for photo in good:
    (folder / photo.name).write_bytes(photo.read_bytes())
  os.mkfifo(folder / "pipe.jpg")
  huge = folder / "huge.jpg"
  huge.write_bytes(good[0].read_bytes())
  with huge.open("r+b") as f:
    f.truncate(4 * 2**30)
  sources, skipped = synth_splices.list_sources(folder)
  assert sorted(pathlib.Path(s.path).name for s in sources) == sorted(p.name for p in good)
  reasons = {pathlib.Path(s.source).name: s.reason for s in skipped}
  assert reasons.keys() == {"pipe.jpg", "huge.jpg"}
  assert reasons["pipe.jpg"] == "not a regular file"
  assert reasons["huge.jpg"].startswith("file too large: 4294967296 bytes")


def synth(cwd: pathlib.Path, *args) -> subprocess.CompletedProcess:
  """`python -m eval.data.synth_splices` run from `cwd` (an empty --out would write there)."""
  return subprocess.run([sys.executable, "-m", "eval.data.synth_splices", *map(str, args)],
                        cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)},
                        capture_output=True, text=True, check=False)


def test_unusable_sources_are_named_skipped_and_exit_1_and_a_rerun_keeps_the_set(tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  for photo in sorted(PHOTOS.glob("*.jpg"))[:4]:
    (folder / photo.name).write_bytes(photo.read_bytes())
  whole = (PHOTOS / "apple_iphone_4.jpg").read_bytes()
  (folder / "truncated.jpg").write_bytes(whole[:len(whole) // 2])
  (folder / "text.jpg").write_text("not an image")
  out = tmp_path / "out"
  args = [f"--photos={folder}", f"--out={out}", "--num_spliced=3", "--num_authentic=2",
          "--max_size=256"]
  result = synth(tmp_path, *args)
  assert result.returncode == 1, result.stderr[-3000:]
  text, truncated = result.stderr.splitlines()  # One line each, naming the file.
  assert text == (f"warning: skipped {folder / 'text.jpg'}: not an image Pillow can read: "
                  "UnidentifiedImageError")
  assert truncated.startswith(f"warning: skipped {folder / 'truncated.jpg'}: corrupt or "
                              "truncated image data: OSError: image file is truncated")
  assert "3 spliced and 2 authentic images from" in result.stdout
  assert "2 photos skipped" in result.stdout
  assert len(manifest(out)) == 5 and {e.stem for e in datasets.load("folder", out)} == {
      r["stem"] for r in manifest(out)}
  made = files(out)
  rerun = synth(tmp_path, *args)
  assert (rerun.returncode, rerun.stderr) == (result.returncode, result.stderr)
  assert files(out) == made


@pytest.mark.parametrize("args, expected", [
    (["--num_spliced=-1"], "error: flag --num_spliced=-1: -1 is not a non-negative integer"),
    (["--num_authentic=-5"], "error: flag --num_authentic=-5: -5 is not a non-negative integer"),
    (["--max_size=127"], "error: flag --max_size=127: 127 is not integer >= 128"),
    (["--num_spliced=0", "--num_authentic=0"],
     "error: nothing to make: --num_spliced and --num_authentic are both 0"),
    (["--out="], "error: --out is empty: give an output folder"),
    (["--out={file}"], "error: --out {file}: not a folder"),
    (["--out={file}/out"], "error: --out {file}/out: {file} is not a folder"),
    (["--cameras_from={tmp}/none.json"],
     "error: --cameras_from {tmp}/none.json: No such file or directory"),
    (["--cameras_from={file}"], "error: --cameras_from {file}: not JSON"),
    (["--cameras_from={tmp}/list.json"], "error: --cameras_from {tmp}/list.json: not a "
     "data_prep dataset_info.json (no splits.<split>.cameras)"),
])
def test_a_bad_flag_or_out_is_one_line_before_anything_is_written(args, expected, tmp_path):
  file = tmp_path / "file"
  file.write_text("a file")
  (tmp_path / "list.json").write_text("[1, 2]")
  before = sorted(tmp_path.iterdir())
  args = [a.format(file=file, tmp=tmp_path) for a in args]
  result = synth(tmp_path, f"--photos={PHOTOS}", f"--out={tmp_path / 'out'}", *args)
  assert result.returncode == 2
  assert [line.removesuffix(" (--help lists the flags)")
          for line in result.stderr.splitlines()] == [expected.format(file=file, tmp=tmp_path)]
  assert sorted(tmp_path.iterdir()) == before and file.read_text() == "a file"


def test_ctrl_c_stops_synth_with_one_line_and_the_same_command_resumes(tmp_path):
  settings = dict(num_spliced=24, num_authentic=24, max_size=512)
  reference = make(tmp_path / "reference", seed=3, **settings)
  out = tmp_path / "out"
  command = [sys.executable, "-m", "eval.data.synth_splices", f"--photos={PHOTOS}",
             f"--out={out}", "--seed=3", *(f"--{k}={v}" for k, v in settings.items())]
  stopped = kill_when(command, lambda: any(out.glob("images/*.png")), timeout=120,
                      sig=signal.SIGINT)
  done = len(list(out.glob("images/*.png")))
  assert 1 <= done < 48, "interrupted after the first image and before the last"
  assert stopped.returncode == 130, stopped.stderr[-3000:]
  assert stopped.stderr.splitlines() == ["interrupted; rerun the same command to resume"]
  assert not (out / "manifest.csv").exists() and not list(out.rglob(".*.tmp-*"))
  kept = {p: p.stat().st_mtime_ns for p in out.glob("images/*.png")}
  rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert {p: p.stat().st_mtime_ns for p in kept} == kept  # Finished images are not made again.
  assert files(out) == files(reference)
