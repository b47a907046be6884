"""The `exif-jax` entry point dispatches to each subcommand's own flags and help."""

import subprocess
import sys

from conftest import REPO


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "exif_jax", *args], cwd=REPO,
                        capture_output=True, text=True, check=False)


def test_help_lists_every_subcommand():
  result = run_cli("--help")
  assert result.returncode == 0
  for name in ("prep", "train", "eval", "localize", "synth"):
    assert f"  {name} " in result.stdout


def test_unknown_subcommand_fails_with_usage():
  result = run_cli("frobnicate")
  assert result.returncode == 2
  assert "unknown subcommand 'frobnicate'" in result.stderr


def test_prep_help_shows_its_flags_and_purpose():
  result = run_cli("prep", "--help")  # absl's --help exits 1 after printing.
  assert "ArrayRecord shards" in result.stdout
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
    for flag in ("--checkpoint", "--out", "--num_patches", "--max_pixels", "--pair_memory_mb"):
      assert flag in result.stdout, (subcommand, flag)
