"""File names that could deceive a reader or collide in OUT (issue-30 cases 21 and 24), through
the real command line with the training-free noise method."""

import csv
import json
import shutil
import unicodedata

from conftest import CHART_SPLICES, FIXTURES, run_module
from eval.runs import results
from exif_jax.data import files

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_bidi_overrides_in_names_are_printed_escaped(tmp_path):
  for char in BIDI:
    assert files.display_name(f"a{char}b.png") == f"a\\u{ord(char):04x}b.png"
  folder = tmp_path / "in"
  folder.mkdir()
  shutil.copy(CHART_SPLICES / "images" / "spliced_00000.png", folder / "photo\u202egpj.exe.png")
  out = tmp_path / "out"
  done = run_module("eval.commands.localize", str(folder), "--out", str(out), "--method", "noise")
  shown = "photo\\u202egpj.exe.png"
  table = (out / "scores.csv").read_text(encoding="utf-8")
  page = (out / "report.html").read_text(encoding="utf-8")
  for text in (done.stdout, done.stderr, table, page):
    assert "\u202e" not in text
  assert done.stdout.splitlines()[1].startswith(shown)
  [row] = csv.DictReader(table.splitlines())
  assert row["image"] == f"{folder}/{shown}"
  assert f">{shown}<" in page


def test_names_that_differ_in_case_or_normalization_keep_their_own_files(tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  names = ["x.jpg", "x.JPG", unicodedata.normalize("NFC", "caf\u00e9.jpg"),
           unicodedata.normalize("NFD", "caf\u00e9.jpg")]
  for name, photo in zip(names, sorted((FIXTURES / "camera").glob("*.jpg"))):
    shutil.copy(photo, folder / name)
  out = tmp_path / "out"
  run_module("eval.commands.localize", str(folder), "--out", str(out), "--method", "noise")
  stored = [results.storage_name(name) for name in names]
  # Distinct on a file system that folds case (macOS, Windows) or normalizes Unicode (macOS).
  assert len({unicodedata.normalize("NFC", name).casefold() for name in stored}) == 4, stored
  assert stored[0] == "x.jpg" and stored[1].startswith("x.JPG~")  # Lower-case names as before.
  for name, stem in zip(names, stored):
    record = json.loads((out / "results" / f"{stem}.json").read_text())
    assert record["image"] == str(folder / name) and "score" in record
  maps = [p.name for p in (out / "maps").glob("*.npy")]
  assert len({name.casefold() for name in maps}) == len(maps) == 4
