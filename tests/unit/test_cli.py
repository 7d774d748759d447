"""The ``lstm-conformance`` command: each subcommand's real content, checked against the fixtures themselves.

Most tests call ``conformance.cli.main`` in-process (fast); the installed-wheel tests
run the console script and the CLI from a venv that has no TensorFlow.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conformance import cli, gallery, reference
from conformance.fixtures import gallery_dir, list_fixtures, short_digest
from conformance.gallery import column_slice, fmt

from helpers.repo import REPO
FIXTURES = list_fixtures(gallery_dir()).fixtures
BY_ID = {f.id: f for f in FIXTURES}


def first(predicate):
    """The gallery's first fixture of a kind: the gallery must hold every kind these tests need, so none is a fail."""
    found = [f for f in FIXTURES if predicate(f)]
    assert found, "the gallery holds no fixture of the kind this test needs (add one with generate_fixtures.py)"
    return found[0]


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def table_ids(out: str) -> list[str]:
    """The id column of ``list`` output (header and footer left out)."""
    lines = out.splitlines()
    return [line.split()[0] for line in lines[1:] if line and not line.startswith("(")]


def copy_fixture(fid: str, tmp_path: Path) -> Path:
    root = tmp_path / "fixtures"
    shutil.copytree(BY_ID[fid].path, root / fid)
    return root


# -- list -----------------------------------------------------------------------------------------

def test_list_tag_mask_lists_exactly_the_masked_fixtures(capsys):
    code, out, _ = run_cli(capsys, "list", "--fixture-tag", "mask")
    assert code == 0
    want = sorted(f.id for f in FIXTURES if "mask" in f.tags)
    assert want and table_ids(out) == want


def test_list_filters_by_layer_and_id_glob_and_shows_digests(capsys):
    layer = FIXTURES[0].layer
    code, out, _ = run_cli(capsys, "list", "--layer", layer.lower(), "--fixture-id", "*-*")
    assert code == 0
    assert table_ids(out) == sorted(f.id for f in FIXTURES if f.layer == layer)
    for f in FIXTURES:
        if f.layer == layer:
            assert short_digest(f.digest) in out


def test_list_reports_a_broken_fixture_on_stderr_and_exits_1(capsys, tmp_path):
    root = copy_fixture("lstm-basic" if "lstm-basic" in BY_ID else FIXTURES[0].id, tmp_path)
    (root / "broken-one").mkdir()
    (root / "broken-one" / "fixture.yaml").write_text("format_version: 1\nid: [unclosed\n")
    code, out, err = run_cli(capsys, "list", "--fixtures-dir", root)
    assert code == 1
    assert "broken-one" in err and "broken-one" not in out
    assert len(table_ids(out)) == 1


# -- show -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "Stacked"])
def test_show_has_citation_gate_blocks_inputs_and_expected(capsys, layer):
    fixture = first(lambda f: f.layer == layer)
    code, out, _ = run_cli(capsys, "show", f"{fixture.id}@{fixture.digest[:14]}")
    assert code == 0
    assert fixture.citation in out and fixture.digest in out
    assert out.count("```") % 2 == 0
    for name, weight in fixture.weights.items():
        for gate, (start, stop) in fixture.gates[name].items():
            assert f"  {gate} = {name}{column_slice(weight.ndim, start, stop)}\n" in out, (name, gate)
            block = "\n".join("    " + line for line in fmt(weight[..., start:stop]).splitlines())
            assert block in out, f"{name} gate {gate} block not printed"
    for name, value in {**fixture.inputs, **fixture.expected}.items():
        assert f"{name} {'x'.join(map(str, value.shape))}" in out
        assert "\n".join("  " + line for line in fmt(value).splitlines()) in out, name
    assert gallery.repro_line(fixture.id) in out
    assert fixture.meta["generated_by"]["keras"] in out


def test_show_is_small_enough_to_paste_for_every_fixture(capsys):
    sizes = {}
    for fixture in FIXTURES:
        code, out, _ = run_cli(capsys, "show", fixture.id)
        assert code == 0, fixture.id
        sizes[fixture.id] = len(out)
    biggest = max(sizes, key=sizes.get)
    assert sizes[biggest] < 20_000, f"show {biggest} prints {sizes[biggest]} characters"


def test_show_rejects_a_mismatching_digest_and_an_unknown_id(capsys):
    fixture = FIXTURES[0]
    wrong = "sha256:" + ("0" if fixture.digest[7] != "0" else "1") * 8
    code, out, err = run_cli(capsys, "show", f"{fixture.id}@{wrong}")
    assert code == 2 and out == ""
    assert wrong in err and short_digest(fixture.digest) in err
    code, _, err = run_cli(capsys, "show", "no-such-fixture")
    assert code == 2 and "no-such-fixture" in err


# -- explain --------------------------------------------------------------------------------------

def step_block(out: str, step: int) -> dict[str, np.ndarray]:
    """label -> numbers of the rows under ``step N = ...`` (the first part's)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"step {step} = "))
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        label, _, numbers = line.strip().partition("[")
        rows[label.strip()] = np.array([float(v) for v in numbers.strip(" []").split()])
    return rows


@pytest.mark.parametrize("layer", ["LSTM", "GRU", "SimpleRNN"])
def test_explain_step0_shows_the_trace_values_and_consistent_pre_activations(capsys, layer):
    fixture = first(lambda f: f.layer == layer and not f.meta.get("calls") and f.trace)
    code, out, _ = run_cli(capsys, "explain", fixture.id)
    assert code == 0
    ref = reference.forward(layer, fixture.config, fixture.weights, fixture.gates, fixture.activations,
                            fixture.inputs)["trace"]
    rows = step_block(out, 0)
    for key, stored in fixture.trace.items():
        assert f"  {key:9} {fmt(ref[key][0, 0])}" in out, key
        assert np.allclose(rows[key], stored[0, 0], atol=1e-4 + 5e-5), f"{key}: {rows[key]} vs {stored[0, 0]}"
    rec = reference.activation(fixture.activations.get("recurrent_activation", fixture.activations["activation"]))
    act = reference.activation(fixture.activations["activation"])
    gates = {"LSTM": {"i": rec, "f": rec, "c_tilde": act, "o": rec}, "GRU": {"z": rec, "r": rec, "hh": act},
             "SimpleRNN": {"h": act}}[layer]
    for key, fn in gates.items():
        pre = rows["pre " + ("c" if key == "c_tilde" else "hh" if key == "hh" else key)]
        assert np.allclose(fn(pre), rows[key], atol=3e-4), f"{key} != activation(pre {key})"
    for name, (start, stop) in fixture.gates["kernel"].items():
        assert f"{name} [{start}:{stop}]" in out


def test_explain_follows_go_backwards_and_the_mask(capsys):
    fixture = first(lambda f: f.layer == "LSTM" and f.config.get("go_backwards") and "mask" in f.inputs)
    batch = int(np.argmin(fixture.inputs["mask"].sum(axis=1)))  # the row with most masked steps
    code, out, _ = run_cli(capsys, "explain", fixture.id, "--batch", batch)
    assert code == 0
    steps = fixture.inputs["x"].shape[1]
    mask = fixture.inputs["mask"][batch]
    for k in range(steps):
        t = steps - 1 - k
        header = f"step {k} = input step {t}, mask {int(mask[t])}"
        assert header in out
        assert np.allclose(step_block(out, k)["x_t"], fixture.inputs["x"][batch, t], atol=5e-5)
    assert f"batch row {batch}" in out


def test_explain_runs_for_every_fixture_and_agrees_with_the_stored_trace(capsys):
    for fixture in FIXTURES:
        code, out, err = run_cli(capsys, "explain", fixture.id)
        assert code == 0, f"{fixture.id}: {err}"
        if not fixture.trace:
            assert "This fixture stores no trace" in out, fixture.id
            continue
        found = re.search(r"stored trace to max abs diff (\S+)\.\n", out)
        assert found and float(found.group(1)) < 1e-4, fixture.id


def test_explain_rejects_a_batch_row_out_of_range(capsys):
    fixture = FIXTURES[0]
    code, _, err = run_cli(capsys, "explain", fixture.id, "--batch", fixture.inputs["x"].shape[0])
    assert code == 2 and "out of range" in err


# -- verify ---------------------------------------------------------------------------------------

@pytest.mark.slow  # loads TensorFlow and every model file
def test_verify_passes_the_gallery(capsys):
    code, out, _ = run_cli(capsys, "verify")
    assert code == 0
    assert sorted(re.findall(r"^OK\s+(\S+)@", out, re.M)) == sorted(BY_ID)
    assert "FAILED" not in out


def test_verify_names_a_fixture_whose_yaml_was_edited(capsys, tmp_path):
    fid = FIXTURES[0].id
    root = copy_fixture(fid, tmp_path)
    path = root / fid / "fixture.yaml"
    meta = yaml.safe_load(path.read_text())
    meta["tolerance"]["atol"] = meta["tolerance"]["atol"] * 10
    path.write_text(yaml.safe_dump(meta, sort_keys=False))
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and fid in failed[0] and "digest mismatch" in failed[0]


def test_verify_names_the_array_whose_bytes_were_flipped(capsys, tmp_path):
    fixture = first(lambda f: "kernel" in f.weights)
    root = copy_fixture(fixture.id, tmp_path)
    npz = root / fixture.id / "arrays.npz"
    arrays = dict(np.load(npz, allow_pickle=False))
    data = bytearray(arrays["kernel"].tobytes())
    data[0] ^= 0x01  # one bit of one float
    arrays["kernel"] = np.frombuffer(bytes(data), arrays["kernel"].dtype).reshape(arrays["kernel"].shape)
    np.savez(npz, **arrays)
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and fixture.id in failed[0] and "'kernel'" in failed[0] and "sha256" in failed[0]


def test_verify_names_a_fixture_whose_archive_bytes_were_flipped(capsys, tmp_path):
    fixture = first(lambda f: "kernel" in f.weights)
    root = copy_fixture(fixture.id, tmp_path)
    npz = root / fixture.id / "arrays.npz"
    raw = bytearray(npz.read_bytes())
    at = raw.find(fixture.weights["kernel"].tobytes())
    assert at > 0, "arrays.npz is expected to store its members uncompressed"
    raw[at] ^= 0x01  # one bit of the first kernel value, in the archive itself
    npz.write_bytes(bytes(raw))
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and fixture.id in failed[0], out


# -- run ------------------------------------------------------------------------------------------

def summary_row(out: str, impl: str) -> dict[str, int]:
    """The table row of ``impl`` as {status: count}, read under the table's own column headings."""
    lines = out.splitlines()
    head = next(line for line in lines if line.startswith("implementation "))
    row = next(line for line in lines if line.startswith(impl + " "))
    return dict(zip(head.split()[1:], (int(v) for v in row[len(impl):].split())))


def test_run_numpy_reference_passes_everything(capsys, tmp_path):
    results = tmp_path / "out" / "summary.json"
    code, out, _ = run_cli(capsys, "run", "--impl", "numpy-reference", "--conformance-json", results)
    assert code == 0, out
    assert summary_row(out, "numpy-reference") == {"passed": len(FIXTURES), "failed": 0, "error": 0,
                                                       "skipped": 0, "xfailed": 0, "crashed": 0, "partial": 0}
    summary = json.loads(results.read_text())
    assert {c["fixture"] for c in summary["cases"]} == set(BY_ID)
    assert {c["status"] for c in summary["cases"]} == {"passed"}


WRONG_IMPL = '''
from conformance import reference

def wrong(fixture):
    """The reference with state_h nudged: every fixture that checks state_h fails."""
    result = reference.run(fixture)
    return {k: (v + 0.01 if k.endswith("state_h") else v) for k, v in result.items()}
'''


def test_run_a_wrong_module_attr_impl_fails_and_names_the_fixture(capsys, tmp_path, monkeypatch):
    (tmp_path / "cli_wrong_impl.py").write_text(WRONG_IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    chosen = sorted(f.id for f in FIXTURES if f.layer == "LSTM" and "state_h" in f.expected)[:2]
    args = [a for fid in chosen for a in ("--fixture-id", fid)]
    code, out, _ = run_cli(capsys, "run", "--impl", "cli_wrong_impl:wrong", *args)
    assert code == 1
    for fid in chosen:
        assert f"FAILED cli_wrong_impl:wrong-{fid}" in out
        assert "output 'state_h'" in out
    assert summary_row(out, "cli_wrong_impl:wrong") == {"passed": 0, "failed": 2, "error": 0, "skipped": 0,
                                                            "xfailed": 0, "crashed": 0, "partial": 0}


def test_run_with_a_tag_filter_runs_only_those_fixtures(capsys):
    code, out, _ = run_cli(capsys, "run", "--impl", "numpy-reference", "--fixture-tag", "go_backwards")
    assert code == 0
    want = sum("go_backwards" in f.tags for f in FIXTURES)
    assert summary_row(out, "numpy-reference")["passed"] == want > 0


# -- export, gallery --------------------------------------------------------------------------------

def test_export_json_writes_one_document_per_fixture(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "export", "--format", "json", tmp_path / "json")
    assert code == 0
    assert sorted(p.stem for p in (tmp_path / "json").glob("*.json")) == sorted(BY_ID)


def test_gallery_renders_index_and_pages_and_removes_stale_pages(capsys, tmp_path):
    root = tmp_path / "fixtures"
    chosen = FIXTURES[:2]
    for f in chosen:
        shutil.copytree(f.path, root / f.id)
    out_dir = tmp_path / "gallery"
    out_dir.mkdir()
    (out_dir / "gone-fixture.md").write_text(gallery.MARKER + "\nold page\n")
    (out_dir / "notes.md").write_text("hand-written, not ours\n")
    code, out, _ = run_cli(capsys, "gallery", out_dir, "--fixtures-dir", root, "--no-plots", "--force")
    assert code == 0
    index = (out_dir / "README.md").read_text()
    for f in chosen:
        assert f"[{f.id}]({f.id}.md)" in index and short_digest(f.digest) in index
        page = (out_dir / f"{f.id}.md").read_text()
        assert gallery.fixture_markdown(f, heading="#", html=True) in page
    assert not (out_dir / "gone-fixture.md").exists() and (out_dir / "notes.md").exists()
    assert not list(out_dir.glob("*.png"))


def test_gallery_plots_are_small_pngs_and_dropped_over_budget(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    fixture = first(lambda f: "mask" in f.inputs and f.trace)
    root = tmp_path / "fixtures"
    shutil.copytree(fixture.path, root / fixture.id)
    code, _, _ = run_cli(capsys, "gallery", tmp_path / "g1", "--fixtures-dir", root)
    png = tmp_path / "g1" / f"{fixture.id}.png"
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 30_000
    assert f"]({fixture.id}.png)" in (tmp_path / "g1" / f"{fixture.id}.md").read_text()
    code, _, _ = run_cli(capsys, "gallery", tmp_path / "g2", "--fixtures-dir", root, "--max-bytes", 1000)
    assert code == 0 and not list((tmp_path / "g2").glob("*.png"))
    assert "Plots not committed" in (tmp_path / "g2" / "README.md").read_text()


def test_committed_gallery_lists_every_fixture_at_its_current_digest():
    docs = REPO / "docs" / "gallery"
    if not docs.is_dir():
        pytest.skip("docs/gallery not generated in this checkout")
    index = (docs / "README.md").read_text()
    stale = [f.id for f in FIXTURES if f"[{f.id}]({f.id}.md)" not in index or short_digest(f.digest) not in index
             or not (docs / f"{f.id}.md").is_file() or f.citation not in (docs / f"{f.id}.md").read_text()]
    extra = sorted(p.stem for p in docs.glob("*.md") if p.name != "README.md" and p.stem not in BY_ID)
    assert not stale and not extra, (f"docs/gallery is out of date (missing or stale: {stale}; extra: {extra}); "
                                     "regenerate with `lstm-conformance gallery --force docs/gallery`")
    images = sum(p.stat().st_size for p in docs.glob("*.png"))
    assert sum(p.stat().st_size for p in docs.iterdir()) < gallery.DEFAULT_MAX_BYTES or images == 0
    # each page is `show`'s text (values float32-exact; its prose HTML-escaped), under its own heading
    body = {f.id: gallery.fixture_markdown(f, html=True).split("\n", 1)[1] for f in FIXTURES}
    differs = [fid for fid, text in body.items() if text not in (docs / f"{fid}.md").read_text()]
    assert not differs, f"pages no longer match `lstm-conformance show` (regenerate docs/gallery): {differs[:5]}"


# -- from an installed wheel, without TensorFlow ------------------------------------------------------

def test_installed_console_script_runs_the_suite_without_tensorflow(installed_venv):
    done = installed_venv.run("-c", "import tensorflow")
    assert done.returncode != 0, "the wheel venv is meant to have no TensorFlow"
    import subprocess
    from helpers.venvs import clean_env
    script = installed_venv.bin / "lstm-conformance"
    done = subprocess.run([str(script), "run", "--impl", "numpy-reference"], cwd=installed_venv.workdir,
                          env=clean_env(installed_venv), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert summary_row(done.stdout, "numpy-reference") == {"passed": len(FIXTURES), "failed": 0, "error": 0,
                                                           "skipped": 0, "xfailed": 0, "crashed": 0, "partial": 0}


def test_installed_list_show_explain_verify_work_without_tensorflow(installed_venv):
    fid = FIXTURES[0].id
    code = f"""
import sys
from conformance import cli
for args in (["list"], ["show", "{fid}"], ["explain", "{fid}"], ["verify"]):
    assert cli.main(args) == 0, args
assert "tensorflow" not in sys.modules and "keras" not in sys.modules
print("ALL-OK")
"""
    done = installed_venv.run("-c", code)
    assert done.returncode == 0 and "ALL-OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert BY_ID[fid].citation in done.stdout


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_run_refuses_a_bad_timeout_naming_it(value, monkeypatch, capsys):
    monkeypatch.setenv("LSTM_CONFORMANCE_TIMEOUT", value)
    assert cli.main(["run", "--impl", "numpy-reference", "--fixture-id", "lstm-basic"]) == 2
    assert "timeout" in capsys.readouterr().err.lower()


@pytest.mark.parametrize("args, said", [(["--impl-timeout", "0"], "*timeout must be a positive number*, got 0"),
                                        ([], "*LSTM_CONFORMANCE_TIMEOUT='abc' is not a number of seconds")])
def test_plugin_refuses_a_bad_timeout_as_a_usage_error(args, said, pytester, monkeypatch):
    monkeypatch.setenv("LSTM_CONFORMANCE_TIMEOUT", "abc")
    result = pytester.runpytest_subprocess("--pyargs", "conformance", "--impl", "numpy-reference", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([said])


def test_list_short_option_names_are_the_same_filters(capsys):
    """``--id`` and ``--tag`` (what a reader types first) select exactly what ``--fixture-id``/``--fixture-tag`` do."""
    code, long_out, _ = run_cli(capsys, "list", "--fixture-tag", "mask", "--fixture-id", "lstm-*")
    assert code == 0
    code, short_out, _ = run_cli(capsys, "list", "--tag", "mask", "--id", "lstm-*")
    assert code == 0 and short_out == long_out and table_ids(short_out)


def test_an_unknown_option_shows_the_commands_own_usage(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["list", "--no-such-option"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lstm-conformance list ") and "unrecognized arguments: --no-such-option" in err, err
