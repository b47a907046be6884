"""docs/python.md runs as written, and `exif_jax` exports what it lists without importing JAX."""

import re
import subprocess
import sys

import pytest

from conftest import REPO


def test_the_python_doc_runs_as_written():
  blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "python.md").read_text(), re.S)
  assert len(blocks) >= 2
  result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "attributes that separate the regions most:" in result.stdout
  assert "P(same) = " in result.stdout


def test_import_exif_jax_is_cheap_and_every_public_name_resolves():
  code = ("import sys, exif_jax; assert 'jax' not in sys.modules, 'jax imported'; "
          "missing = [n for n in exif_jax.__all__ if getattr(exif_jax, n, None) is None]; "
          "assert not missing, missing")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


def test_load_localizer_refuses_a_stage_one_checkpoint_in_one_line(tiny_run):
  import exif_jax  # pylint: disable=g-import-not-at-top
  workdir, _ = tiny_run  # Stage 1 ("exif"): its classifier never trained.
  with pytest.raises(exif_jax.CheckpointError) as error:
    exif_jax.load_localizer(str(workdir))
  message = str(error.value)
  assert message.startswith(f"{workdir}: a stage-1 checkpoint, whose same-image classifier is "
                            "untrained") and "\n" not in message
