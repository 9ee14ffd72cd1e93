"""Fixtures for the emulator's own tests: one fast shared emulator, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_client import BUCKET, CiClient, jpeg, make_emulator

from airflow_provider_ci.emulator import Emulator


@pytest.fixture(scope="session")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with make_emulator(tmp_path_factory.mktemp("emulator")) as emulator:
        yield emulator


@pytest.fixture
def emulator(shared_emulator: Emulator) -> Emulator:
    """The shared fast emulator, reset, with ``in/pic.jpg`` in the default bucket."""
    shared_emulator.reset()
    shared_emulator.put_object(BUCKET, "in/pic.jpg", jpeg())
    return shared_emulator


@pytest.fixture
def ci(emulator: Emulator) -> CiClient:
    return CiClient(emulator)
