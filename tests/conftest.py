"""Shared test set-up: 4 fake CPU devices, paths to the shared real data, a small shard set."""

import os

# Must be set before jax is imported anywhere in the test session.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
PHOTOS = SHARED_DATA / "photos"
FIXTURES = SHARED_DATA / "fixtures"


@pytest.fixture(scope="session")
def photos_dir() -> pathlib.Path:
  if not PHOTOS.is_dir():
    pytest.fail(f"{PHOTOS}: the shared photos must sit beside the repository")
  return PHOTOS


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
  return FIXTURES
