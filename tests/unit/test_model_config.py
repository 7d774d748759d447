"""The model-config allow-list (conformance.model_config) admits every model file the gallery ships.

It was derived from them: a new kind of layer in the gallery must be added to it on purpose, or
every suite run would call that fixture broken. The refusals are in tests/integration/test_hostile_models.py.
"""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from conformance import model_config

from helpers.repo import REPO


def test_every_shipped_model_file_passes():
    files = sorted((REPO / "fixtures").glob("*/model.keras")) + sorted((REPO / "fixtures").glob("*/model.h5"))
    assert files
    for path in files:
        if path.suffix == ".h5" and importlib.util.find_spec("h5py") is None:
            pytest.skip("h5py is not installed: the .h5 configs cannot be read")
        config = model_config.check_file(path.read_bytes(), path)
        # a Model fixture's chain of layers is a Sequential (SPEC 5.15); every other file is a Functional
        layer = yaml.safe_load((path.parent / "fixture.yaml").read_text())["layer"]
        assert config["class_name"] in ({"Sequential", "Functional"} if layer == "Model" else {"Functional"}), path
