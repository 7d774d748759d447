"""Independently written wrong ports (tests/impls/, own numpy loops) fail where they are wrong, pass where they are
right, and the diagnosis names the catalogued mistake each makes: the catalogue checked against ports that never
go through it. Run through the real plug-in path, ``pytest --pyargs conformance --impl module:run``.
"""

from __future__ import annotations

import shutil

import pytest

from conformance.fixtures import list_fixtures

from helpers.repo import REPO
from test_wrong_impl import run_suite

# port -> (mistake key its diagnosis must name, fixtures it must fail, fixtures it must pass)
PORTS = {
    "impl_lstm_forget_bias_twice:run": ("forget-bias-twice", ["lstm-seed-question", "lstm-basic"], []),
    "impl_gru_reset_wrong_side:run": ("gru-reset-after-mixed-up", ["gru-reset-after-return-sequences"],
                                      ["gru-reset-before-basic", "gru-reset-before-return-sequences"]),
    "impl_lstm_go_backwards_flipped:run": ("go-backwards-flipped-back", ["lstm-go-backwards-sequences"],
                                           ["lstm-basic", "lstm-return-sequences", "lstm-go-backwards"]),
}


@pytest.fixture(scope="module")
def chosen_gallery(tmp_path_factory):
    root = tmp_path_factory.mktemp("wrong-port-fixtures")
    for fid in {f for _, fail, ok in PORTS.values() for f in fail + ok}:
        shutil.copytree(REPO / "fixtures" / fid, root / fid)
    listing = list_fixtures(root)
    assert listing.fixtures and not listing.errors, listing.errors
    return listing


def test_each_wrong_port_fails_its_fixtures_and_is_named(pytester, chosen_gallery):
    reports = run_suite(pytester, chosen_gallery, *PORTS)
    for impl, (key, fail, ok) in PORTS.items():
        for fid in ok:
            report = reports[(impl, fid)]
            assert report.passed, f"{impl} on {fid} should pass (its loop is right there): {report.longreprtext}"
        for fid in fail:
            report = reports[(impl, fid)]
            assert report.failed, f"{impl} on {fid}: {report.outcome}"
            assert f"[mistake {key}]" in report.longreprtext, f"{impl} on {fid}:\n{report.longreprtext}"
