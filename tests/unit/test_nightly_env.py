"""The ``nightly`` tox env: tf-nightly and keras-nightly pinned, out of CI's default list, and written up.

A nightly changes every day, so it must never gate CI (not in ``env_list``, not in ``full``); its pins are exact
dev builds, so a run can be repeated; docs/nightly.md states the versions it ran, and the generated matrix links
there whenever its results hold the nightly env.
"""

from __future__ import annotations

import configparser
import re

from conformance import report

from helpers.repo import REPO

PIN = re.compile(r"^(tf-nightly|keras-nightly)==(\S+)$")
FACTOR = re.compile(r"^[\w,!-]+:\s")


def _tox() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "tox.ini")
    return config


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.replace("\n", ",").split(",") if name.strip()]


def _pins() -> dict[str, str]:
    deps = [line.split("#")[0].strip() for line in _tox()["testenv:nightly"]["deps"].splitlines()]
    return {m.group(1): m.group(2) for m in map(PIN.match, deps) if m}


def test_the_nightly_env_pins_dev_builds_of_tf_nightly_and_keras_nightly():
    pins = _pins()
    assert set(pins) == {"tf-nightly", "keras-nightly"}, f"[testenv:nightly] deps pin {pins}"
    assert all(".dev" in version for version in pins.values()), pins


def test_the_nightly_env_stays_out_of_the_default_list_and_full():
    tox = _tox()
    assert "nightly" not in _names(tox["tox"]["env_list"])
    labels = {k.strip(): v for k, v in (line.split("=", 1) for line in tox["tox"]["labels"].strip().splitlines())}
    assert "nightly" not in _names(labels["full"])
    assert _names(tox["testenv:nightly"]["labels"]) == ["nightly"]


def test_the_nightly_env_runs_the_suite_as_the_other_keras_envs_do():
    """Same pytest command as [testenv] (every Keras implementation, junit and summary under results/<env>)."""
    tox = _tox()
    # [testenv]'s commands less the lines only some envs run (``tf215,tfkeras: ...``)
    shared = [line for line in tox["testenv"]["commands"].strip().splitlines() if not FACTOR.match(line.strip())]
    assert tox["testenv:nightly"]["commands"].strip().splitlines() == shared


def test_docs_nightly_names_the_pinned_versions():
    text = (REPO / "docs" / "nightly.md").read_text()
    for package, version in _pins().items():
        assert f"{package} {version}" in text, f"docs/nightly.md does not name {package} {version}"


def test_the_matrix_links_the_nightly_write_up_only_when_the_nightly_env_ran():
    summary = {"cases": [], "implementations": {}}
    with_nightly = report.to_markdown(report.build({"tf221": summary, "nightly": summary}),
                                      {"tf221": summary, "nightly": summary})
    without = report.to_markdown(report.build({"tf221": summary}), {"tf221": summary})
    assert "[nightly.md](nightly.md)" in with_nightly and "## Keras nightly" in with_nightly
    assert "nightly.md" not in without
    html_page = report.to_html(report.build({"nightly": summary}), {"nightly": summary})
    assert '<a href="nightly.md">nightly.md</a>' in html_page
    assert "nightly.md" not in report.to_html(report.build({"tf221": summary}), {"tf221": summary})
    assert (REPO / "docs" / report.NIGHTLY_DOC).is_file()
