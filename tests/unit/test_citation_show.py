"""Citing a fixture as people paste it, and ``show``/``explain`` values exact enough for a 1e-5 bug."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conformance import cli, reference
from conformance.errors import FixtureError
from conformance.fixtures import resolve_citation, short_digest
from conformance.gallery import fmt

NUMBER = re.compile(r"-?\d+\.\d*(?:e[-+]\d+)?")


def seed(gallery):
    return next(f for f in gallery if f.id == "lstm-seed-question")


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in NUMBER.findall(text)])


# -- citations --------------------------------------------------------------------------------------

def test_a_citation_resolves_with_or_without_the_sha256_prefix_and_in_any_case(gallery):
    fixture = seed(gallery)
    hexdigits = fixture.digest.removeprefix("sha256:")
    for cited in (fixture.id, fixture.citation, f"{fixture.id}@{hexdigits[:8]}", f"{fixture.id}@{hexdigits[:8].upper()}",
                  f"{fixture.id}@{hexdigits}", f"{fixture.id}@{fixture.digest}", f"{fixture.id}@{hexdigits[:3]}"):
        assert resolve_citation(gallery, cited) is fixture, cited


@pytest.mark.parametrize("form", ["{hex}", "sha256:{hex}"])
def test_a_mismatching_digest_is_an_error_naming_both_digests(gallery, form):
    fixture = seed(gallery)
    wrong = "".join("0" if c != "0" else "1" for c in fixture.digest[7:15])
    cited = form.format(hex=wrong)
    with pytest.raises(FixtureError) as caught:
        resolve_citation(gallery, f"{fixture.id}@{cited}")
    assert cited in str(caught.value) and short_digest(fixture.digest) in str(caught.value)


@pytest.mark.parametrize("cited", ["", "sha256:", "sha", "xyz12345", "sha256:ad55 59e1"])
def test_a_malformed_digest_is_an_error_saying_how_to_cite(gallery, cited):
    fixture = seed(gallery)
    with pytest.raises(FixtureError, match="is not a digest: cite as"):
        resolve_citation(gallery, f"{fixture.id}@{cited}")


def test_show_accepts_the_bare_hex_prefix_people_paste(capsys, gallery):
    fixture = seed(gallery)
    code, out, err = run_cli(capsys, "show", f"{fixture.id}@{fixture.digest[7:15]}")
    assert code == 0 and err == ""
    assert fixture.citation in out


# -- values exact to float32 ----------------------------------------------------------------------------

def test_fmt_default_reads_back_as_the_same_float32_even_for_1e_5_differences():
    base = np.random.default_rng(3).uniform(-1, 1, (3, 5)).astype(np.float32)
    values = np.concatenate([base, base + np.float32(1e-5), np.float32([[1e-7, -2.5e-6, 0, 1, 300]])])
    assert np.array_equal(np.float32(numbers(fmt(values))).reshape(values.shape), values)
    rounded = np.float32(numbers(fmt(values, 4))).reshape(values.shape)
    assert not np.array_equal(rounded, values)
    assert np.array_equal(np.float32(numbers(fmt(np.float64(values)))).reshape(values.shape), values)


def test_fmt_precision_gives_that_many_decimals():
    values = np.float32([[0.123456, -7.5], [0.05, 2]])
    for precision in (0, 2, 6):
        decimals = {len(v.partition(".")[2]) for v in fmt(values, precision).replace("[", " ").replace("]", " ").split()}
        assert decimals == {precision}, fmt(values, precision)


def expected_blocks(out: str) -> dict[str, str]:
    """name -> the array text under it, in the ``show`` block of expected outputs."""
    fenced = out.split("**Expected outputs**", 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0]
    parts = re.split(r"^(\S+) [\dx]+ float32$", fenced, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_show_prints_every_expected_value_exactly_and_precision_rounds(capsys, gallery):
    fixture = seed(gallery)
    code, out, _ = run_cli(capsys, "show", fixture.id)
    assert code == 0
    shown = expected_blocks(out)
    assert set(shown) == set(fixture.expected)
    for name, value in fixture.expected.items():
        assert np.array_equal(np.float32(numbers(shown[name])).reshape(value.shape), value), name
    code, out, _ = run_cli(capsys, "show", fixture.id, "--precision", 2)
    assert code == 0
    for name, text in expected_blocks(out).items():
        assert {len(v.partition(".")[2]) for v in NUMBER.findall(text)} == {2}, name


def test_explain_default_is_float32_exact_and_precision_applies_to_every_row(capsys, gallery):
    fixture = seed(gallery)
    code, out, _ = run_cli(capsys, "explain", fixture.id)
    assert code == 0
    trace = reference.forward(fixture.layer, fixture.config, fixture.weights, fixture.gates, fixture.activations,
                              fixture.inputs)["trace"]
    step0 = out.split("\nstep 0 = ", 1)[1].split("\n\n", 1)[0]
    for key, value in trace.items():
        row = next(line for line in step0.splitlines() if line.split()[0] == key)
        assert np.array_equal(np.float32(numbers(row)), np.float32(value[0, 0])), (key, row)
    code, out, _ = run_cli(capsys, "explain", fixture.id, "--precision", 3)
    assert code == 0
    step0 = out.split("\nstep 0 = ", 1)[1].split("\n\n", 1)[0]
    assert {len(v.partition(".")[2]) for v in NUMBER.findall(step0)} == {3}


@pytest.mark.parametrize("command", ["show", "explain"])
def test_a_negative_precision_is_a_usage_error(capsys, gallery, command):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, seed(gallery).id, "--precision", "-1"])
    assert exited.value.code == 2 and "--precision: expected a number of decimals" in capsys.readouterr().err
