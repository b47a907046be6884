"""The `exif-jax` entry point: each subcommand's own flags and help, quiet output, exit statuses.

Exit statuses: 0 every input used, 1 some skipped (the others done), 2 bad usage or nothing
could be done.
"""

import importlib.metadata
import re
import shutil
import subprocess
import sys

import pytest

from conftest import CHART_SPLICES, FIXTURES, REPO
from exif_jax.cli import command

ABSL_LOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d")  # e.g. "I1203 14:02:12.97 ...".
GOOD_IMAGE = CHART_SPLICES / "images" / "spliced_00000.png"


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "exif_jax", *args], cwd=REPO,
                        capture_output=True, text=True, check=False)


def text_lines(output: str) -> list[str]:
  """The lines of stderr or stdout that are not a progress bar's."""
  return [line for line in output.splitlines()
          if line.strip() and not re.match(r"\w+( worker \d+)?: +\d+%\|", line)]


def truncated_copy(source, target):
  target.write_bytes(source.read_bytes()[:2000])
  return target


def test_help_lists_every_subcommand_and_the_exit_statuses():
  result = run_cli("--help")
  assert result.returncode == 0
  for name in ("prep", "train", "validate", "eval", "localize", "synth", "table", "convert-tf1"):
    assert f"  {name} " in result.stdout
  assert "Exit status: 0 every input was used; 1 some inputs were skipped" in result.stdout


def test_version_is_the_installed_package_version():
  result = run_cli("--version")
  assert result.returncode == 0
  assert result.stdout == f"exif-jax {importlib.metadata.version('exif-jax')}\n"


def test_convert_tf1_is_a_subcommand_with_its_own_flags(tmp_path):
  result = run_cli("convert-tf1", "--help")
  assert result.returncode == 0
  assert "Original TF1 weights" in result.stdout
  for flag in ("--weights", "--out", "--config"):
    assert flag in result.stdout
  missing = run_cli("convert-tf1", "--weights", str(tmp_path / "nosuch.npz"), "--out",
                    str(tmp_path / "out"))
  assert missing.returncode == 2 and "Traceback" not in missing.stderr
  assert text_lines(missing.stderr)[-1].startswith(f"error: {tmp_path / 'nosuch.npz'}")


def test_unknown_subcommand_fails_with_usage():
  result = run_cli("frobnicate")
  assert result.returncode == 2
  assert "unknown subcommand 'frobnicate'" in result.stderr


def test_prep_help_shows_its_flags_purpose_and_exit_statuses():
  result = run_cli("prep", "--help")
  assert result.returncode == 0
  assert "ArrayRecord shards" in result.stdout
  assert "Exit status: 0 every input was used" in result.stdout
  for flag in ("--photos", "--out", "--num_workers", "--worker_index", "--val_fraction"):
    assert flag in result.stdout


def test_prep_runs_through_the_cli(tmp_path, fixtures_dir):
  result = run_cli("prep", f"--photos={fixtures_dir / 'camera'}", f"--out={tmp_path}",
                   "--patches_per_photo=1", "--processes=1")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "12 photos in 1 shards" in result.stdout


def test_localize_and_eval_help_show_the_shared_evaluation_flags():
  for subcommand in ("localize", "eval"):
    result = run_cli(subcommand, "--help")
    assert result.returncode == 0
    for flag in ("--checkpoint", "--out", "--num_patches", "--max_pixels", "--pair_memory_mb"):
      assert flag in result.stdout, (subcommand, flag)


@pytest.mark.parametrize("args", [
    ["localize", str(GOOD_IMAGE), "--out=OUT", "--no_such_flag"],
    ["localize", str(GOOD_IMAGE)],  # --out is required.
    ["localize", "--out=OUT"],  # No image.
    ["eval", "--out=OUT"],  # Neither --images nor --dataset.
    ["eval", f"--images={GOOD_IMAGE.parent}", "--masks=MISSING", "--out=OUT"],
    ["prep", "--photos=MISSING", "--out=OUT"],
    ["train", "--config=configs/tiny.py"],  # --workdir is required.
    ["synth", "--photos=MISSING", "--out=OUT", "unexpected"],
])
def test_usage_errors_exit_2_with_one_line(args, tmp_path):
  args = [a.replace("OUT", str(tmp_path / "out")).replace("MISSING", str(tmp_path / "none"))
          for a in args]
  result = run_cli(*args)
  assert result.returncode == 2, result.stderr[-2000:]
  assert len(text_lines(result.stderr)) == 1 and result.stderr.startswith("error: ")
  assert not (tmp_path / "out").exists()


def test_localize_with_a_bad_input_exits_1_quietly_and_maps_the_good_one(tmp_path):
  good = shutil.copy(GOOD_IMAGE, tmp_path / "good.png")
  truncated = truncated_copy(GOOD_IMAGE, tmp_path / "truncated.png")
  missing = tmp_path / "missing.png"
  out = tmp_path / "out"
  result = run_cli("localize", str(good), str(truncated), str(missing), "--out", str(out),
                   "--num_patches", "16")
  assert result.returncode == 1, result.stderr[-2000:]
  assert sorted(p.name for p in (out / "maps").glob("*.npy")) == ["good.png.npy"]
  # Nothing but its own lines: no library log (absl's format) or warning.
  lines = text_lines(result.stderr)
  assert len(lines) == 3, result.stderr
  assert lines[0] == "3 of 3 images to do (0 already done)"
  assert lines[1].startswith(f"warning: skipped {truncated}: corrupt or truncated")
  assert lines[2] == f"warning: skipped {missing}: no such file"
  table = text_lines(result.stdout)
  assert len(table) == 5 and table[-1] == f"report: {out / 'report.html'}"
  assert table[1].split()[:1] == ["good.png"]


def test_localize_with_no_usable_input_exits_2_with_one_error_line(tmp_path):
  out = tmp_path / "out"
  broken = truncated_copy(GOOD_IMAGE, tmp_path / "broken.png")
  result = run_cli("localize", str(broken), "--out", str(out))
  assert result.returncode == 2, result.stderr[-2000:]
  assert text_lines(result.stderr)[-1] == "error: no input could be used (1 skipped)"
  assert result.stdout == ""


def test_localize_verbose_shows_the_library_logs_and_exits_0(tmp_path):
  result = run_cli("localize", str(GOOD_IMAGE), "-v", "--out", str(tmp_path / "out"),
                   "--num_patches", "16")
  assert result.returncode == 0, result.stderr[-2000:]
  library_lines = [line for line in result.stderr.splitlines()
                   if ABSL_LOG_LINE.match(line) and "checkpointer.py" in line]
  assert library_lines, result.stderr[-2000:]
  assert (tmp_path / "out" / "maps" / f"{GOOD_IMAGE.name}.npy").exists()


def test_prep_exits_1_when_some_photos_are_skipped_and_2_when_all_are(tmp_path):
  photo = FIXTURES / "camera" / "casio_ex-s1.jpg"
  mixed, broken = tmp_path / "mixed", tmp_path / "broken"
  mixed.mkdir()
  broken.mkdir()
  shutil.copy(photo, mixed)
  truncated_copy(photo, mixed / "truncated.jpg")
  truncated_copy(photo, broken / "truncated.jpg")
  flags = ["--patches_per_photo=1", "--processes=1"]
  some = run_cli("prep", f"--photos={mixed}", f"--out={tmp_path / 'some'}", *flags)
  assert some.returncode == 1, some.stderr[-2000:]
  assert "1 photos in 1 shards (train: 1), 1 inputs skipped" in some.stdout
  lines = text_lines(some.stderr)
  assert len(lines) == 3, some.stderr
  assert lines[0].startswith(f"warning: skipped {mixed / 'truncated.jpg'}: ")
  assert lines[1] == "worker 0 wrote 1 of its 1 shards"
  # One camera model: the default --val_fraction holds none out, and prep says so.
  assert lines[2].startswith("warning: no camera model held out for validation")
  none = run_cli("prep", f"--photos={broken}", f"--out={tmp_path / 'none'}", *flags)
  assert none.returncode == 2, none.stderr[-2000:]
  assert text_lines(none.stderr)[-1] == "error: no input could be used (1 skipped)"


def test_a_bare_v_asks_for_absl_info_logs():
  assert command.expand_verbose_flag(["a.png", "-v", "--out=o"]) == [
      "a.png", "--verbosity=0", "--out=o"]
  assert command.expand_verbose_flag(["-v", "1", "a.png"]) == ["-v", "1", "a.png"]
  assert command.expand_verbose_flag(["--", "-v"]) == ["--", "-v"]


@pytest.mark.parametrize("module", ["eval.commands.localize", "eval.commands.run_eval",
                                    "data_prep.__main__", "eval.data.synth_splices",
                                    "eval.reporting.paper_table", "exif_jax.main"])
def test_a_subcommand_module_loads_without_jax_so_help_is_quick(module):
  """absl answers --help once the module's flags are defined: JAX (seconds to import) waits
  for main()."""
  code = f"import sys, {module}; assert 'jax' not in sys.modules, 'jax imported'"
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]


def test_localize_reports_missing_inputs_before_the_model_loads(tmp_path):
  result = run_cli("localize", str(tmp_path / "nosuch.jpg"), "--out", str(tmp_path / "out"),
                   "--checkpoint", str(tmp_path / "no_model"))
  assert result.returncode == 2
  # The missing image, not the missing checkpoint: nothing was loaded.
  assert text_lines(result.stderr) == [
      f"error: no such file or folder: {tmp_path / 'nosuch.jpg'}"]
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config", ["tiny", "tiny.py", "image_consistency:tiny"])
def test_a_shipped_config_is_found_by_name_from_another_folder(tmp_path, config):
  result = subprocess.run(
      [sys.executable, "-m", "exif_jax", "train", "--config", config, "--workdir",
       str(tmp_path / "run"), f"--config.data.data_dir={tmp_path / 'no_shards'}"],
      cwd=tmp_path, capture_output=True, text=True, check=False)
  # The config loaded (its data_dir is what is refused), and nothing was written.
  assert result.returncode == 2
  assert text_lines(result.stderr)[-1] == (
      f"error: config.data.data_dir: {tmp_path / 'no_shards'}: no such dataset directory")
  assert not (tmp_path / "run").exists()
  assert command.shipped_config("nosuch") == "nosuch"
