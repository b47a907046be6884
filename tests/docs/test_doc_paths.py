"""The docs name only code that exists: every repository path and every `python -m` module in
README.md and docs/*.md is there."""

import ast
import importlib.util
import pathlib
import re

import pytest

from configs import common
from conftest import REPO

DOCS = [REPO / "README.md", REPO / "examples" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP_FOLDERS = ("exif_jax", "eval", "data_prep", "configs", "scripts", "benchmarks", "tests",
               "examples", "docs")
# A path starts at a top-level folder of the repository and ends at a file or folder name.
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*[\w/])" % "|".join(TOP_FOLDERS))
MODULE = re.compile(r"python3? -m ([\w.]+)")
DOTTED = re.compile(r"`((?:exif_jax|eval|data_prep)\.[\w.]+)")


# `config.eval.every` and the like, written without `config.`: fields, not modules.
CONFIG_FIELDS = {f"eval.{name}" for name in common.base_config().eval}
# A dagger later on a path's line (`configs/x.py` †) marks a file removed after the experiment
# that results.md reports, at the commit named beside it.
REMOVED = re.compile(r"[^\n]*\N{DAGGER}")


def _mentions(pattern: re.Pattern) -> list[tuple[str, str]]:
  mentions = []
  for doc in DOCS:
    text = doc.read_text()
    for match in pattern.finditer(text):
      name = match.group(1)
      if not REMOVED.match(text, match.end()) and name not in CONFIG_FIELDS:
        mentions.append((doc.relative_to(REPO).as_posix(), name))
  return mentions


def test_the_docs_name_paths():
  # Guards the test itself: the docs do name many paths.
  assert len(_mentions(PATH)) > 50


@pytest.mark.parametrize("doc,path", sorted(set(_mentions(PATH))))
def test_every_path_in_the_docs_exists(doc, path):
  assert (REPO / path.rstrip("/")).exists(), f"{doc} names {path}, which does not exist"


@pytest.mark.parametrize("doc,module", sorted(set(_mentions(MODULE))))
def test_every_module_run_in_the_docs_exists(doc, module):
  assert importlib.util.find_spec(module) is not None, f"{doc} runs {module}: no such module"


def _top_level_names(module: str) -> set[str]:
  """Names a module defines or imports at top level, read from its source: importing every
  command module into one process would define their absl flags twice."""
  tree = ast.parse(pathlib.Path(importlib.util.find_spec(module).origin).read_text())
  names = set()
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      names.add(node.name)
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      names.update(n.id for target in targets for n in ast.walk(target)
                   if isinstance(n, ast.Name))
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
  return names


@pytest.mark.parametrize("doc,dotted", sorted(set(_mentions(DOTTED))))
def test_every_dotted_name_in_the_docs_exists(doc, dotted):
  """`pkg.module.attr` names a module, or a top-level name of the longest module prefix."""
  parts = dotted.rstrip(".").split(".")
  for cut in range(len(parts), 0, -1):
    module = ".".join(parts[:cut])
    try:
      spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
      spec = None
    if spec is not None:
      if cut < len(parts):
        # A package's names (exif_jax's public API loads lazily) come from importing it:
        # packages define no flags.
        names = (dir(importlib.import_module(module)) if spec.submodule_search_locations
                 else _top_level_names(module))
        assert parts[cut] in names, f"{doc} names {dotted}: {module} has no {parts[cut]}"
      return
  pytest.fail(f"{doc} names {dotted}: no such module")
