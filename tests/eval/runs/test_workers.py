"""One evaluation split over processes sharing one OUT: the same summaries as one process."""

import json
import os
import pathlib
import subprocess
import sys

import portpicker
import pytest

from conftest import CHART_SPLICES, FIXTURES, REPO, kill_when
from eval.data import datasets
from eval.data import synth_splices
from eval.runs import out_folder
from eval.runs import workers

EXAMPLE = CHART_SPLICES / "images" / "authentic_00000.png"
SUMMARIES_WRITTEN = "every image is done: summaries written"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> pathlib.Path:
  """3 spliced (with masks) + 2 authentic images between cameras, at most 256 px."""
  out = tmp_path_factory.mktemp("benchmark") / "set"
  photos = sorted((FIXTURES / "camera").glob("*.jpg"))
  synth_splices.make_splices(photos, out, num_spliced=3, num_authentic=2, seed=0, max_size=256)
  return out


def eval_command(benchmark: pathlib.Path, out: pathlib.Path, *flags: str) -> list[str]:
  """run_eval of `benchmark` with the bundled model, cheap settings."""
  return [sys.executable, "-m", "eval.commands.run_eval", "--images", str(benchmark / "images"),
          "--masks", str(benchmark / "masks"), "--out", str(out), "--num_patches", "16",
          "--noattr_maps", *flags]


def run(command: list[str]) -> subprocess.CompletedProcess:
  return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def start(command: list[str], log: pathlib.Path) -> subprocess.Popen:
  # Output to a file: a full pipe would block one worker while the test waits for the other.
  return subprocess.Popen(command, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(processes: list[subprocess.Popen], logs: list[pathlib.Path]) -> list[str]:
  """Waits for every process; their outputs, each of which must have exited 0."""
  for process in processes:
    process.wait(timeout=300)
  outputs = [log.read_text() for log in logs]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  return outputs


@pytest.fixture(scope="module")
def reference(benchmark, tmp_path_factory) -> pathlib.Path:
  """OUT of one process over the whole benchmark."""
  out = tmp_path_factory.mktemp("reference") / "out"
  result = run(eval_command(benchmark, out))
  assert result.returncode == 0, result.stderr[-3000:]
  return out


def assert_same_summaries(out: pathlib.Path, reference: pathlib.Path) -> None:
  assert (out / "scores.csv").read_text() == (reference / "scores.csv").read_text()
  assert (json.loads((out / "metrics.json").read_text())
          == json.loads((reference / "metrics.json").read_text()))
  assert (out / "report.html").read_bytes() == (reference / "report.html").read_bytes()


def test_two_concurrent_workers_write_the_summaries_of_one_process(benchmark, reference,
                                                                   tmp_path):
  out = tmp_path / "out"
  logs = [tmp_path / f"worker_{i}.log" for i in range(2)]
  outputs = finish([start(eval_command(benchmark, out, "--num_workers=2", f"--worker_index={i}"),
                          log) for i, log in enumerate(logs)], logs)
  # Every-other image of the 5 sorted by stem: 3 for worker 0, 2 for worker 1, each once.
  assert "3 of 3 images to do" in outputs[0] and "3 of 5 images ->" in outputs[0]
  assert "2 of 2 images to do" in outputs[1] and "2 of 5 images ->" in outputs[1]
  assert sum(SUMMARIES_WRITTEN in output for output in outputs) == 1
  assert len(list((out / "results").iterdir())) == 5
  assert_same_summaries(out, reference)


@pytest.mark.slow
def test_a_killed_worker_redoes_only_its_missing_images(benchmark, reference, tmp_path):
  out = tmp_path / "out"
  examples = datasets.folder(benchmark)
  share = [f"{e.stem}.json" for e in workers.Split(num_workers=2, index=0).take(examples)]
  worker_0 = eval_command(benchmark, out, "--num_workers=2", "--worker_index=0")
  kill_when(worker_0, lambda: any((out / "results" / name).exists() for name in share),
            timeout=300)
  done = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
  assert 1 <= len(done) < len(share) and set(done) <= set(share)

  other = run(eval_command(benchmark, out, "--num_workers=2", "--worker_index=1"))
  assert other.returncode == 0, other.stderr[-3000:]
  remaining = len(share) - len(done)
  assert f"{remaining} of 5 images remain for the other workers" in other.stderr
  assert not any((out / name).exists() for name in ("scores.csv", "metrics.json",
                                                    "report.html"))

  rerun = run(worker_0)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"{remaining} of {len(share)} images to do ({len(done)} already done)" in rerun.stderr
  assert SUMMARIES_WRITTEN in rerun.stderr
  assert {name: (out / "results" / name).stat().st_mtime_ns for name in done} == done
  assert_same_summaries(out, reference)
  # Nothing left to do: a rerun of either worker leaves the summaries as they are.
  again = run(worker_0)
  assert "the summaries already hold these results" in again.stderr
  assert_same_summaries(out, reference)


@pytest.mark.slow
def test_processes_of_a_jax_distributed_job_split_the_images(benchmark, reference, tmp_path):
  out = tmp_path / "out"
  address = f"localhost:{portpicker.pick_unused_port()}"
  logs = [tmp_path / f"process_{i}.log" for i in range(2)]
  outputs = finish([start(eval_command(benchmark, out, f"--coordinator_address={address}",
                                       "--num_processes=2", f"--process_id={i}"), log)
                    for i, log in enumerate(logs)], logs)
  assert "worker 0 of 2: 3 of the 5 images" in outputs[0]
  assert "worker 1 of 2: 2 of the 5 images" in outputs[1]
  assert_same_summaries(out, reference)


def test_shares_cover_the_list_once_whatever_its_order():
  examples = [datasets.Example(stem=stem, image_path=pathlib.Path(stem), spliced=None)
              for stem in ("c", "a", "e", "b", "d")]
  shares = [workers.Split(num_workers=2, index=i).take(examples) for i in range(2)]
  assert [[e.stem for e in share] for share in shares] == [["c", "a", "e"], ["b", "d"]]
  assert [e.stem for e in workers.Split(num_workers=2, index=0).take(examples[::-1])] == [
      "e", "a", "c"]
  assert workers.WHOLE_LIST.take(examples) == examples
  assert workers.Split(num_workers=9, index=8).take(examples) == []
  with pytest.raises(ValueError, match=r"--worker_index 2 is not in \[0, --num_workers 2\)"):
    workers.Split(num_workers=2, index=2)


def test_workers_share_out_but_never_one_share_or_two_splits(tmp_path):
  out = tmp_path / "out"
  with out_folder.locked(out, 0, 2):
    with out_folder.locked(out, 1, 2):  # Another worker of the same split joins.
      pass
    with pytest.raises(out_folder.OutError, match="worker 0 of 2 is already running there"):
      with out_folder.locked(out, 0, 2):
        pass
    with pytest.raises(out_folder.OutError, match="workers of another --num_workers than 3"):
      with out_folder.locked(out, 1, 3):
        pass
    with pytest.raises(out_folder.OutError, match="in use by another run"):
      with out_folder.locked(out):  # The whole list overlaps every share.
        pass
  with out_folder.locked(out, 1, 3):  # Free once the split of 2 is done.
    pass
  with out_folder.locked(out):
    with pytest.raises(out_folder.OutError, match="in use by another run"):
      with out_folder.locked(out, 0, 2):
        pass


def test_a_starting_worker_keeps_the_temporaries_of_running_ones(tmp_path):
  out = tmp_path / "out"
  (out / "maps").mkdir(parents=True)
  writing = out / "maps" / ".a.npy.tmp-123-abc"  # As files.atomic_file names them.
  with out_folder.locked(out, 0, 2):
    writing.write_bytes(b"")
    with out_folder.locked(out, 1, 2):
      assert writing.exists()
  with out_folder.locked(out, 1, 2):  # Alone: what is left was left by a killed run.
    assert not writing.exists()


@pytest.mark.parametrize("flags, message", [
    (["--num_workers=2", "--worker_index=2"], "--worker_index 2 is not in [0, --num_workers 2)"),
    (["--distributed", "--num_workers=2"], "jax.distributed gives the split: drop --num_workers"),
])
def test_a_bad_split_is_one_line_before_any_work(flags, message, tmp_path):
  out = tmp_path / "out"
  result = run([sys.executable, "-m", "eval.commands.localize", str(EXAMPLE), f"--out={out}",
                *flags])
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
  assert not os.path.exists(out)


def test_perturb_asks_for_one_process(benchmark, tmp_path):
  result = run(eval_command(benchmark, tmp_path / "out", "--perturb=jpeg=90", "--num_workers=2"))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "error: --perturb runs in one process: drop --num_workers and --distributed (--help "
      "shows the usage)"]
