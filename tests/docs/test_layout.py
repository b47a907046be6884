"""The layout of docs/layout.md holds: imports run down its table, no folder is crowded."""

import ast
import pathlib

import pytest

from conftest import REPO

# Folder -> the folders its modules may import (besides itself); docs/layout.md's table.
ALLOWED = {
    "exif_jax/cli": {"exif_jax/data"},
    "exif_jax/data": set(),
    "exif_jax/models": {"exif_jax/data"},
    "exif_jax/training": {"exif_jax/data", "exif_jax/models", "exif_jax/cli"},
    "data_prep": {"exif_jax/data", "exif_jax/cli"},
    "eval/localization": {"exif_jax/data", "exif_jax/models", "exif_jax/training",
                          "exif_jax/cli", "exif_jax"},
    "eval/data": {"exif_jax/data", "exif_jax/cli", "data_prep"},
    "eval/reporting": {"eval", "eval/localization", "exif_jax/data", "exif_jax/cli",
                       "data_prep"},
    "eval": {"eval/localization", "eval/data", "exif_jax/data"},
    "eval/runs": {"eval", "eval/localization", "eval/data", "eval/reporting", "exif_jax",
                  "exif_jax/data", "exif_jax/models", "exif_jax/training", "exif_jax/cli",
                  "data_prep"},
    "configs": {"exif_jax/models"},
}
PACKAGES = ("exif_jax", "eval", "data_prep", "configs")
MAX_MODULES = 12


def _modules() -> list[pathlib.Path]:
  return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def _folder(path: pathlib.Path) -> str:
  return path.parent.relative_to(REPO).as_posix()


def _imported_folders(path: pathlib.Path) -> set[str]:
  """The project folders a module imports from, at any depth of its code."""
  folders = set()
  for node in ast.walk(ast.parse(path.read_text())):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [f"{node.module}.{alias.name}" for alias in node.names]
    elif isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    for name in names:
      if name.split(".")[0] not in PACKAGES:
        continue
      parts = name.split(".")
      # The deepest folder that holds the name: a package, or the folder of a module.
      for cut in range(len(parts), 0, -1):
        candidate = REPO.joinpath(*parts[:cut])
        if candidate.is_dir():
          folders.add(candidate.relative_to(REPO).as_posix())
          break
        if candidate.with_suffix(".py").is_file():
          folders.add(candidate.parent.relative_to(REPO).as_posix())
          break
  return folders


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_imports_run_down_the_layout(path):
  folder = _folder(path)
  if folder not in ALLOWED:  # The entry points (exif_jax/, eval/commands/) may import anything.
    return
  wrong = _imported_folders(path) - ALLOWED[folder] - {folder}
  assert not wrong, f"{path.relative_to(REPO)} imports from {sorted(wrong)}"


def test_no_folder_is_crowded():
  counts = {}
  for path in _modules():
    if path.name != "__init__.py":
      counts[_folder(path)] = counts.get(_folder(path), 0) + 1
  assert len(counts) >= 10
  crowded = {folder: n for folder, n in counts.items() if n > MAX_MODULES}
  assert not crowded, f"more than {MAX_MODULES} modules: {crowded}"
