"""OUT is never taken over, never read as input, and never holds a stale result (issue-30
cases 1-3, 7, 18, 19), with the training-free noise method so that no model loads."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import CHART_SPLICES, REPO
from eval.data import datasets
from eval.localization import noise_method
from eval.runs import batch
from eval.runs import inputs
from eval.runs import results

IMAGES = sorted((CHART_SPLICES / "images").glob("*.png"))


def run(module, *args, cwd=REPO):
  return subprocess.run([sys.executable, "-m", module, "--method", "noise", *map(str, args)],
                        cwd=cwd, capture_output=True, text=True, check=False)


def error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_kill_between_the_map_and_the_result_leaves_no_stale_result(tmp_path, monkeypatch):
  photo = tmp_path / "in" / "photo.png"
  photo.parent.mkdir()
  shutil.copy(IMAGES[0], photo)
  out, localizer = tmp_path / "out", noise_method.NoiseLocalizer()
  examples = inputs.examples_from_paths([photo.parent])
  batch.run(examples, localizer, out)
  result = out / "results" / "photo.png.json"
  assert json.loads(result.read_text())["score"] >= 0
  shutil.copy(IMAGES[2], photo)  # Another image under the same name.

  def killed(*args, **kwargs):  # The run dies after the map, before the thumbnail.
    raise KeyboardInterrupt
  monkeypatch.setattr(results, "_save_image", killed)
  with pytest.raises(KeyboardInterrupt):
    batch.run(examples, localizer, out)
  assert not result.exists()  # The old result stopped counting before the map changed.
  assert results.earlier_result(examples[0], out, 10**9) is None
  monkeypatch.undo()
  batch.run(examples, localizer, out)
  assert json.loads(result.read_text())["sha256"] == results.read(
      examples[0], localizer, 10**9).record["sha256"]


def test_an_out_inside_the_input_folder_is_never_read_as_input(tmp_path):
  for image in IMAGES[:2]:
    shutil.copy(image, tmp_path)
  for _ in range(2):
    done = run("eval.commands.localize", ".", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert sorted(row.split(",")[0] for row in rows[1:]) == sorted(i.name for i in IMAGES[:2])


def test_a_folder_that_is_not_an_out_is_refused_and_left_as_it_was(tmp_path):
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "report.html").write_text("my report")
  refused = run("eval.commands.localize", IMAGES[0], "--out", mine)
  assert refused.returncode == 2
  assert error_lines(refused.stderr) == [
      f"error: --out {mine}: not empty and not an exif-jax output folder (no settings.json); "
      "give a new or empty folder"]
  assert [p.name for p in mine.iterdir()] == ["report.html"]
  assert (mine / "report.html").read_text() == "my report"


def test_a_run_with_no_images_writes_nothing(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "notes.txt").write_text("not an image")  # Ignored, as prep does.
  out = tmp_path / "out"
  nothing = run("eval.commands.localize", tmp_path / "empty", "--out", out)
  assert nothing.returncode == 2
  assert error_lines(nothing.stderr) == ["error: no images to localize in the inputs given"]
  assert not out.exists()
  # The next real run, with other options, is not refused because of it.
  done = run("eval.commands.localize", IMAGES[0], "--out", out, "--num_patches", "64")
  assert done.returncode == 0, done.stderr[-2000:]


def test_files_that_are_not_images_are_ignored_in_folders_but_not_when_named(tmp_path):
  shutil.copy(IMAGES[0], tmp_path / "photo.png")
  (tmp_path / "notes.txt").write_text("not an image")
  folder = run("eval.commands.localize", tmp_path, "--out", tmp_path / "out1")
  assert folder.returncode == 0, folder.stderr[-2000:]
  named = run("eval.commands.localize", tmp_path / "photo.png", tmp_path / "notes.txt",
              "--out", tmp_path / "out2")
  assert named.returncode == 1 and "notes.txt" in named.stderr


def test_a_corrupt_mask_skips_its_image_with_the_reason(tmp_path):
  images, masks = tmp_path / "images", tmp_path / "masks"
  shutil.copytree(CHART_SPLICES / "images", images)
  shutil.copytree(CHART_SPLICES / "masks", masks)
  truncated = masks / "spliced_00001.png"
  truncated.write_bytes(truncated.read_bytes()[:200])
  (masks / "spliced_00002.png").write_bytes(b"not a png")
  done = run("eval.commands.run_eval", "--images", images, "--masks", masks, "--out",
             tmp_path / "out")
  assert done.returncode == 1, done.stderr[-2000:]
  assert "Traceback" not in done.stderr
  for name in ("spliced_00001.png", "spliced_00002.png"):
    assert f"{masks / name}: unreadable mask" in done.stderr
  metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
  assert metrics  # The other images were evaluated.
  record = json.loads((tmp_path / "out" / "results" / "spliced_00000.json").read_text())
  assert "metrics" in record


def test_the_mask_reader_names_the_file(tmp_path):
  mask = tmp_path / "m.png"
  mask.write_bytes(b"\x89PNG broken")
  example = datasets.Example(stem="x", image_path=IMAGES[0], spliced=True, mask_path=mask)
  with pytest.raises(ValueError, match=f"{mask}: unreadable mask"):
    example.mask  # pylint: disable=pointless-statement


def test_a_full_disk_is_one_line_and_the_results_written_stay_whole(tmp_path):
  """A real full disk: a 3 MiB tmpfs as OUT, in a user and mount namespace of this test."""
  if not shutil.which("unshare"):
    pytest.skip("needs unshare (util-linux) for a private tmpfs")
  disk, report = tmp_path / "disk", tmp_path / "report.json"
  disk.mkdir()
  check = ("import json, pathlib, sys, numpy as np; out = pathlib.Path(sys.argv[1]); "
           "done = [json.loads(p.read_text()) for p in (out / 'results').glob('*.json')]; "
           "whole = all(np.load(out / 'maps' / (r['stem'] + '.npy')).ndim == 2 "
           "and (out / 'thumbs' / (r['stem'] + '.jpg')).stat().st_size for r in done); "
           "open(sys.argv[2], 'w').write(json.dumps([len(done), whole]))")
  script = (f'mount -t tmpfs -o size=3m tmpfs "{disk}" || exit 99; '
            f'"{sys.executable}" -m eval.commands.localize --method noise '
            f'"{CHART_SPLICES / "images"}" --out "{disk / "out"}"; status=$?; '
            f'"{sys.executable}" -c "{check}" "{disk / "out"}" "{report}"; exit $status')
  result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           script], cwd=REPO, capture_output=True, text=True, check=False)
  if result.returncode == 99 or "unshare:" in result.stderr:
    pytest.skip(f"no private tmpfs here: {result.stderr.strip()[-200:]}")
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert error_lines(result.stderr)[-1].endswith(
      ": no space left on device; free some and rerun the same command to resume")
  done, whole = json.loads(report.read_text())
  assert 0 < done < len(IMAGES) and whole
