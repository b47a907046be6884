"""No result lost or misattributed, every bad flag or output folder a one-line error, Ctrl-C a
one-line stop: each through the real command line on the repository's small real images."""

import base64
import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import CHART_SPLICES, FIXTURES, REPO, foreground_sigint, kill_when
from eval.runs import results as results_lib
from exif_jax.data import files

CAMERA = sorted((FIXTURES / "camera").glob("*.jpg"))  # 640x480 but CAMERA[8], 480x640.
EXAMPLE = CHART_SPLICES / "images" / "authentic_00000.png"  # 512x480.
LONG = "a" * 242 + ".jpg"  # 246 bytes: a file system takes it, OUT/maps/<it>.npy not.
NON_UTF8 = os.fsdecode(b"\xff" * 96 + b".jpg")  # 100 bytes, 292 once escaped.
CONTROL = "\x1b[31mred.jpg"  # A terminal escape code.
FORMULA = "-1+1.jpg"  # A spreadsheet runs a cell that starts with '-'.
SECRET_COLOUR = (255, 0, 255)
INTERRUPTED = "interrupted; rerun the same command to resume"


def localize(*args):
  return subprocess.run([sys.executable, "-m", "eval.commands.localize", *map(str, args)], cwd=REPO,
                        capture_output=True, text=True, check=False)


def sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def results(out: pathlib.Path) -> dict[str, dict]:
  return {p.name.removesuffix(".json"): json.loads(p.read_text())
          for p in (out / "results").glob("*.json")}


def message_lines(stderr: str) -> list[str]:
  """stderr without its progress bars (tqdm redraws them after \\r)."""
  return [line.strip() for line in re.split(r"[\r\n]", stderr)
          if line.strip() and not re.match(r"[\w ]+: +\d+%\|", line.strip())]


@dataclasses.dataclass
class TwoRuns:
  photos: pathlib.Path
  out: pathlib.Path
  first: subprocess.CompletedProcess
  first_results: dict[str, dict]
  first_mtimes: dict[str, int]
  second: subprocess.CompletedProcess
  victim: pathlib.Path  # What a symlink at OUT/report.html pointed to.


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> TwoRuns:
  """localize of a folder whose files share stems or have hostile names, then the same command
  after adding, creating, deleting and replacing inputs and tampering with OUT."""
  root = tmp_path_factory.mktemp("two_runs")
  photos, out = root / "photos", root / "out"
  sources = {"x/a.jpg": CAMERA[0], "x/a.png": EXAMPLE, "x/a-1.jpg": CAMERA[1],
             "y/a.jpg": CAMERA[2], LONG: CAMERA[3], NON_UTF8: CAMERA[4], CONTROL: CAMERA[5],
             FORMULA: CAMERA[6], "gone.jpg": CAMERA[7], "replaced.jpg": CAMERA[8]}
  for name, source in sources.items():
    (photos / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, photos / name)
  # late.jpg is missing at first; gone.jpg is named on the command line too, so that the rerun
  # still asks for it after it is deleted.
  command = [photos, photos / "late.jpg", photos / "gone.jpg", "--out", out,
             "--num_patches", 16]
  first = localize(*command)
  first_results = results(out)
  first_mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}

  (photos / "w").mkdir()
  shutil.copy(CAMERA[9], photos / "w" / "a.jpg")
  shutil.copy(CAMERA[10], photos / "late.jpg")
  (photos / "gone.jpg").unlink()
  shutil.copy(CAMERA[11], photos / "replaced.jpg")  # Another photo, landscape, not portrait.
  tampered = out / "results" / "x%2Fa-1.jpg.json"  # Stays a result of its input.
  tampered.write_text(json.dumps({**json.loads(tampered.read_text()),
                                  "verdict": "<script>alert(1)</script>"}))
  secret = root / "secret.png"  # Outside the inputs: no report may show it.
  Image.new("RGB", (200, 200), SECRET_COLOUR).save(secret)
  redirected = out / "results" / "y%2Fa.jpg.json"
  redirected.write_text(json.dumps({**json.loads(redirected.read_text()), "image": str(secret)}))
  victim = root / "victim.html"
  victim.write_text("keep me")
  (out / "report.html").unlink()
  (out / "report.html").symlink_to(victim)
  second = localize(*command)
  return TwoRuns(photos, out, first, first_results, first_mtimes, second, victim)


def test_files_that_share_a_stem_keep_their_own_results(two_runs):
  assert two_runs.first.returncode == 1, two_runs.first.stderr[-3000:]  # late.jpg skipped.
  rows = {row["stem"]: row for row in csv.DictReader((two_runs.out / "scores.csv").open())}
  for name in ("x/a.jpg", "x/a.png", "x/a-1.jpg", "y/a.jpg"):
    stem = results_lib.storage_name(name)
    record = two_runs.first_results[stem]
    path = two_runs.photos / name
    assert record["name"] == name and record["image"] == str(path)
    assert record["sha256"] == sha256(path)
    heat = np.load(two_runs.out / "maps" / f"{stem}.npy")
    assert heat.shape == Image.open(path).size[::-1]  # The PNG is 512 wide, the JPEGs 640.
    assert rows[stem]["image"] == str(path)
  assert len({two_runs.first_results[results_lib.storage_name(n)]["score"]
              for n in ("x/a.jpg", "x/a.png", "x/a-1.jpg")}) == 3


def test_added_inputs_leave_every_earlier_result_with_its_file(two_runs):
  second = two_runs.second
  # w/a.jpg (new), late.jpg (skipped before), gone.jpg (deleted), replaced.jpg (other bytes)
  # and y/a.jpg (its result names another file): 5 to do; the 7 others are kept untouched.
  assert "5 of 12 images to do (7 already done)" in second.stderr, second.stderr[-3000:]
  for name in ("x/a.jpg", "x/a.png", LONG, NON_UTF8, CONTROL, FORMULA):
    file = f"{results_lib.storage_name(name)}.json"
    assert (two_runs.out / "results" / file).stat().st_mtime_ns == two_runs.first_mtimes[file]
  after = results(two_runs.out)
  assert after["x%2Fa-1.jpg"]["verdict"].startswith("<script>")  # Rewritten by the test.
  for name in ("x/a.jpg", "y/a.jpg", "w/a.jpg", "late.jpg", "replaced.jpg"):
    record = after[results_lib.storage_name(name)]
    assert record["image"] == str(two_runs.photos / name), record
    assert record["sha256"] == sha256(two_runs.photos / name), name
  assert results_lib.storage_name("w/a.jpg") == "w%2Fa.jpg"


def test_names_too_long_to_store_are_bounded_and_distinct(two_runs):
  stems = {record["name"]: stem for stem, record in two_runs.first_results.items()}
  for name in (LONG, files.display_name(NON_UTF8)):
    stem = stems[name]
    assert len(stem) == 113 and stem[100] == "~" and stem.isascii(), stem
    assert "score" in two_runs.first_results[stem]
    assert (two_runs.out / "maps" / f"{stem}.npy").exists()
  assert stems[LONG] == results_lib.storage_name(LONG)
  assert stems[files.display_name(NON_UTF8)] == results_lib.storage_name(NON_UTF8)
  # Escaping is injective: a name that looks like an escape is escaped itself.
  assert results_lib.storage_name("a%2fb") == "a%252fb" != results_lib.storage_name("a/b")
  assert results_lib.storage_name("b" * 120) == "b" * 120  # Up to 120 bytes, names stay whole.


def test_a_skipped_input_is_retried(two_runs):
  first = two_runs.first_results["late.jpg"]
  assert first["error"] == "no such file" and "score" not in first
  late = results(two_runs.out)["late.jpg"]
  assert "error" not in late and 0 <= late["score"] <= 1
  assert np.load(two_runs.out / "maps" / "late.jpg.npy").shape == (480, 640)


def test_deleted_and_replaced_inputs_are_reported_from_out_alone(two_runs):
  second = two_runs.second
  assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr[-3000:]
  assert "warning: skipped" in second.stderr and "gone.jpg: no such file" in second.stderr
  after = results(two_runs.out)
  assert after["gone.jpg"]["error"] == "no such file"
  replaced = after["replaced.jpg"]
  assert replaced["sha256"] == sha256(CAMERA[11]) != two_runs.first_results["replaced.jpg"][
      "sha256"]
  assert np.load(two_runs.out / "maps" / "replaced.jpg.npy").shape == (480, 640)
  page = (two_runs.out / "report.html").read_text()
  assert 'id="gone.jpg"' in page and "no such file" in page
  rows = {row["stem"] for row in csv.DictReader((two_runs.out / "scores.csv").open())}
  assert "gone.jpg" not in rows and "w%2Fa.jpg" in rows


def embedded_images(page: str) -> list[np.ndarray]:
  return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
          for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_escapes_result_text_and_shows_only_this_runs_images(two_runs):
  page = (two_runs.out / "report.html").read_text()
  assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
  images = embedded_images(page)
  assert len(images) >= 12 * 2
  assert not any((image == SECRET_COLOUR).all(axis=-1).mean() > 0.5 for image in images)
  # A symlink at OUT/report.html is replaced, not written through.
  assert not (two_runs.out / "report.html").is_symlink()
  assert two_runs.victim.read_text() == "keep me"
  # Printed names never carry a terminal's escape codes; no CSV cell is a formula.
  for output in (two_runs.first.stdout, two_runs.first.stderr, two_runs.second.stdout):
    assert "\x1b" not in output
  assert "\\x1b[31mred.jpg" in two_runs.first.stdout
  rows = list(csv.reader((two_runs.out / "scores.csv").open()))
  assert rows[0] == ["stem", "score", "image"]
  assert ["-1%2B1.jpg", str(two_runs.photos / FORMULA)] in [[r[0], r[2]] for r in rows]
  # The stem column is the stored name exactly; the printable text is never a formula.
  assert all((two_runs.out / "maps" / f"{row[0]}.npy").exists() for row in rows[1:])
  assert not any(row[2].startswith(("=", "+", "-", "@")) for row in rows)


def test_a_run_refuses_an_out_that_another_run_holds(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  command = [EXAMPLE, "--out", out, "--method", "noise"]
  with (out / ".lock").open("w") as held:
    fcntl.flock(held, fcntl.LOCK_EX)
    refused = localize(*command)
  assert refused.returncode == 2, refused.stderr[-3000:]
  assert message_lines(refused.stderr) == [
      f"error: {out} is in use by another run; wait for it or give another --out"]
  assert sorted(p.name for p in out.iterdir()) == [".lock"]  # Nothing written.
  assert localize(*command).returncode == 0  # Free again once the other run ends.


@pytest.mark.parametrize("module, flag", [
    ("eval.commands.localize", "--num_patches=0"),
    ("eval.commands.localize", "--stride=0"),
    ("eval.commands.localize", "--max_pixels=0"),
    ("eval.commands.localize", "--pair_memory_mb=-1"),
    ("data_prep", "--crop_size=0"),
    ("data_prep", "--num_shards=-1"),
    ("data_prep", "--photos_per_shard=0"),
    ("data_prep", "--patches_per_photo=0"),
    ("data_prep", "--processes=0"),
    ("data_prep", "--val_fraction=1.5"),
])
def test_a_flag_out_of_range_is_one_line_before_any_work(module, flag, tmp_path):
  out = tmp_path / "out"
  inputs = ([str(EXAMPLE)] if module == "eval.commands.localize"
            else [f"--photos={FIXTURES / 'camera'}"])
  result = subprocess.run([sys.executable, "-m", module, *inputs, f"--out={out}", flag],
                          cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = message_lines(result.stderr)
  name = flag.split("=")[0]
  assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], lines
  assert not out.exists()


@pytest.mark.parametrize("case", ["empty", "file", "under_a_file", "not_json", "not_settings"])
def test_an_unusable_out_is_one_line_before_the_model_loads(case, tmp_path):
  file = tmp_path / "file"
  file.write_text("a file")
  out, settings, expected = {
      "empty": ("", None, "error: --out is empty: give an output folder"),
      "file": (file, None, f"error: --out {file}: not a folder"),
      "under_a_file": (file / "out", None, f"error: --out {file / 'out'}: {file} is not a folder"),
      "not_json": (tmp_path / "out", "{oops", f"error: {tmp_path / 'out' / 'settings.json'}: "
                   "not JSON; give another --out or delete it"),
      "not_settings": (tmp_path / "out", "[1, 2]", f"error: {tmp_path / 'out' / 'settings.json'}"
                       ": not the settings of an exif-jax output folder; give another --out or "
                       "delete it"),
  }[case]
  if settings is not None:
    out.mkdir()
    (out / "settings.json").write_text(settings)
  before = sorted(tmp_path.rglob("*"))
  # A checkpoint that does not exist: --out is refused before any model is looked for.
  result = localize(EXAMPLE, "--out", out, "--checkpoint", tmp_path / "no_model")
  assert result.returncode == 2, result.stderr[-3000:]
  assert message_lines(result.stderr) == [expected]
  assert sorted(tmp_path.rglob("*")) == before  # Nothing written.
  if settings is not None:
    assert (out / "settings.json").read_text() == settings


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line_and_the_same_command_resumes(tmp_path):
  photos, out = tmp_path / "photos", tmp_path / "out"
  photos.mkdir()
  for source in CAMERA[:6]:
    shutil.copy(source, photos)
  command = [sys.executable, "-m", "eval.commands.localize", str(photos), "--out", str(out),
             "--num_patches", "16"]
  stopped = kill_when(command, lambda: any(out.glob("results/*.json")), timeout=300,
                      sig=signal.SIGINT)
  done = len(list(out.glob("results/*.json")))
  assert 1 <= done < 6, "interrupted after the first image and before the last"
  assert stopped.returncode == 130, stopped.stderr[-3000:]
  lines = message_lines(stopped.stderr)
  assert lines[-1] == INTERRUPTED and lines.count(INTERRUPTED) == 1, lines
  assert "Traceback" not in stopped.stderr
  rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"{6 - done} of 6 images to do ({done} already done)" in rerun.stderr
  assert sorted(results(out)) == sorted(p.name for p in CAMERA[:6])


LOST_CTRL_C = """
import gc, signal
from exif_jax.cli import ctrl_c
ctrl_c.install()
def press(phase, info):
  gc.callbacks.remove(press)
  signal.raise_signal(signal.SIGINT)  # Its KeyboardInterrupt is raised, and dropped, in here.
gc.callbacks.append(press)
gc.collect()
print("went on")
try:
  ctrl_c.raise_if_pressed()
except KeyboardInterrupt:
  print("stopped")
"""


def _maps(pid_file: pathlib.Path, library: str) -> bool:
  """Whether the process whose pid is in `pid_file` has mapped a shared library named so."""
  try:
    return library in pathlib.Path(f"/proc/{pid_file.read_text().strip()}/maps").read_text()
  except (OSError, ValueError):
    return False


@pytest.mark.parametrize("library", ["_multiarray_umath", "jaxlib"])
def test_a_ctrl_c_while_the_command_starts_is_one_line_and_130(tmp_path, library):
  """While the subcommand's module is imported (numpy mapped) and while JAX is (jaxlib mapped:
  JAX's garbage-collector callback used to swallow it), not only in the image loop."""
  pid = tmp_path / "pid"
  command = ["sh", "-c", f'echo $$ > "{pid}"; exec "{sys.executable}" -m exif_jax localize '
             f'"{EXAMPLE}" --out "{tmp_path / "out"}" --num_patches 16']
  stopped = kill_when(command, lambda: _maps(pid, library), timeout=120, sig=signal.SIGINT)
  assert stopped.returncode == 130, stopped.stderr[-3000:]
  assert message_lines(stopped.stderr)[-1] == INTERRUPTED
  assert "Traceback" not in stopped.stderr


def test_a_ctrl_c_dropped_in_a_gc_callback_still_stops_the_loop_quietly():
  """JAX's gc callback can swallow the KeyboardInterrupt of a Ctrl-C: the loops still stop."""
  result = subprocess.run([sys.executable, "-c", LOST_CTRL_C], cwd=REPO, capture_output=True,
                          text=True, check=False, preexec_fn=foreground_sigint)
  assert (result.returncode, result.stdout, result.stderr) == (0, "went on\nstopped\n", "")


def test_ctrl_c_stops_prep_with_one_line_and_the_same_command_resumes(tmp_path):
  out = tmp_path / "shards"
  command = [sys.executable, "-m", "data_prep", f"--photos={FIXTURES / 'photos'}",
             f"--out={out}", "--photos_per_shard=4", "--patches_per_photo=1", "--processes=2"]
  stopped = kill_when(command, lambda: any(out.glob("shard-*.json")), timeout=300,
                      sig=signal.SIGINT)
  assert stopped.returncode == 130, stopped.stderr[-3000:]
  assert message_lines(stopped.stderr) == [INTERRUPTED] and "Traceback" not in stopped.stderr
  assert not (out / "dataset_info.json").exists()
  rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert json.loads((out / "dataset_info.json").read_text())["num_records"] == 33
