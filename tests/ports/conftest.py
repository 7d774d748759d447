"""What every port test shares: a private conversion cache, so a test converts for real and never reads or writes
the user's cache, and tf2onnx's opset at its default (the onnx-based ports convert with it)."""

from __future__ import annotations

import pytest

from conformance.adapters.tf2onnx import OPSET_VARIABLE


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTM_CONFORMANCE_NO_CACHE", raising=False)
    monkeypatch.delenv(OPSET_VARIABLE, raising=False)
    return tmp_path / "cache"
