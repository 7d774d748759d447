"""Hostile fixture data through every command (SPEC 13.3), next to good fixtures that must not suffer.

Declared sizes (a small folder declaring gigabytes), dtypes the format does not have, what the YAML
parser itself raises, terminal escapes in a fixture's text, a plug-in that changes the working
directory, and the gallery's output folder. The loader-level refusals of the same data are in the
catalogue of ``test_hostile_fixtures.py``; here they go through ``list``, ``verify``, ``export``,
``gallery``, ``show``, ``explain`` and the suite as a user runs them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import hostile
from conformance import cli
from conformance import fixtures as loader
from conformance.export import check_out_dir
from conformance.fixtures import ARRAYS_NAME, YAML_NAME, list_fixtures

MIB = 1 << 20
# A child that runs a command and reports its peak resident memory: ``RUSAGE_CHILDREN`` of a process
# whose only child is that command (KiB on Linux).
RSS_PROBE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
             "print('RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


# -- builders ------------------------------------------------------------------------------------------

def without_model(folder: Path) -> Path:
    """The fixture with no model file: ``verify`` then imports no Keras, so memory and time measure the loader."""
    hostile.edit_meta(folder, lambda meta: meta.pop("model_file", None))
    (folder / "model.keras").unlink(missing_ok=True)
    return folder


def plain_good(root: Path) -> list[str]:
    """The two good fixtures of ``hostile.GOOD``, without their model files."""
    for fid in hostile.GOOD:
        without_model(hostile.copy_fixture(root, fid))
    return list(hostile.GOOD)


def with_payload(root: Path, name: str, mebibytes: int) -> Path:
    """``hostile.SOURCE`` plus a float32 array ``payload`` of ``mebibytes`` MiB of zeros, stored deflated.

    Everything is consistent (sha256, digest): the folder takes a few hundred kB and holds exactly what its
    YAML declares. Written in 1 MiB chunks, so building it holds no copy of the array either.
    """
    folder = without_model(hostile.copy_fixture(root, hostile.SOURCE, name))
    count = mebibytes * MIB // 4
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (count,)})
    zeros, sha = bytes(MIB), hashlib.sha256()
    members = hostile.npy_members(folder)
    with zipfile.ZipFile(folder / ARRAYS_NAME, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, raw in members.items():
            archive.writestr(member, raw)
        info = zipfile.ZipInfo("payload.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as out:
            out.write(header.getvalue())
            for _ in range(mebibytes):
                out.write(zeros)
                sha.update(zeros)
    hostile.edit_meta(folder, lambda meta: meta["arrays"].update(
        payload={"shape": [count], "dtype": "float32", "sha256": sha.hexdigest()}))
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _as_dtype(name: str, dtype):
    def change(arrays):
        value = arrays[name]
        if np.dtype(dtype).names:
            arrays[name] = np.zeros(value.shape, dtype)
            arrays[name]["a"] = value
        else:
            arrays[name] = value.astype(dtype)
    return change


def huge_integer(folder: Path) -> None:
    with open(folder / YAML_NAME, "a") as handle:
        handle.write("seed_digits: " + "9" * 5000 + "\n")


# (name, build(folder), what the error says): each is one fixture's error, whatever the command
BROKEN = {
    "yaml-huge-integer": (huge_integer, r"not valid safe YAML: ValueError: Exceeds the limit \(4300 digits\)"),
    "dtype-int64": (lambda f: hostile.edit_arrays(f, _as_dtype("output", np.int64), update_yaml=True),
                    r"array 'output' has dtype 'int64'; an array other than a mask must be float16 or float32"),
    "dtype-complex": (lambda f: hostile.edit_arrays(f, _as_dtype("x", np.complex64), update_yaml=True),
                      r"array 'x' has dtype 'complex64'"),
    "dtype-string": (lambda f: hostile.edit_arrays(f, _as_dtype("output", str), update_yaml=True),
                     r"array 'output' has dtype 'str\d+'"),
    "dtype-structured": (lambda f: hostile.edit_arrays(f, _as_dtype("kernel", [("a", "<f4"), ("b", "<f4")]),
                                                       update_yaml=True), r"array 'kernel' has dtype 'void64'"),
    "declared-2gib": (lambda f: hostile.edit_meta(f, lambda m: m["arrays"]["x"].update(shape=[2, 1 << 28])),
                      rf"array 'x' declares {2 << 30} bytes .* over the {loader.MAX_ARRAY_BYTES}-byte limit per array"),
}


def broken_root(base: Path, name: str) -> tuple[Path, list[str]]:
    root = base / "fixtures"
    build, _ = BROKEN[name]
    build(without_model(hostile.copy_fixture(root, hostile.SOURCE, name)))
    return root, plain_good(root)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def probe(command: list[str], cwd: Path, env: dict | None = None) -> tuple[int, str, int]:
    """Run ``command`` as a user would; (exit status, output, its peak resident memory in bytes)."""
    done = subprocess.run([sys.executable, "-c", RSS_PROBE, *command], capture_output=True, text=True,
                          errors="replace", cwd=cwd, env=env or hostile.clean_env(), timeout=300)
    rss = re.findall(r"^RSS (\d+)$", done.stdout, re.M)
    assert rss, done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode, done.stdout + done.stderr, int(rss[-1]) * 1024


def verify_command(root: Path) -> list[str]:
    return [sys.executable, "-m", "conformance", "verify", "--fixtures-dir", str(root)]


def suite_command(root: Path, out: Path, *impls: str) -> list[str]:
    return [*hostile.PYTEST, "-p", "no:cacheprovider", "--pyargs", "conformance", "-rfEs", "--fixtures-dir",
            str(root), "--conformance-json", str(out), *[a for impl in impls or ("numpy-reference",)
                                                          for a in ("--impl", impl)]]


# -- item 4: declared sizes ----------------------------------------------------------------------------

def test_a_small_folder_declaring_too_much_is_refused_by_every_command_in_little_memory(tmp_path, capsys):
    """256 MiB declared and really stored (deflated to well under a MiB): refused from the YAML alone."""
    mebibytes = 256
    root, small_root = tmp_path / "fixtures", tmp_path / "small"
    folder = with_payload(root, "huge", mebibytes)
    assert folder_bytes(folder) < 2 * MIB
    without_model(hostile.copy_fixture(root, hostile.SOURCE, "small"))
    without_model(hostile.copy_fixture(small_root, hostile.SOURCE, "small"))
    says = (f"array 'payload' declares {mebibytes * MIB} bytes (shape [{mebibytes * MIB // 4}], float32), over the "
            f"{loader.MAX_ARRAY_BYTES}-byte limit per array; refused before reading it")

    code, out, err = run_cli(capsys, "list", "--fixtures-dir", root)
    assert code == 1 and f"ERROR {folder / YAML_NAME}: fixture 'huge': {says}" in err.splitlines()
    assert re.search(r"^small\s", out, re.M), out

    code, out, rss = probe(verify_command(root), tmp_path)
    _, _, rss_small = probe(verify_command(small_root), tmp_path)
    assert code == 1 and f"FAILED {folder / YAML_NAME}: fixture 'huge': {says}" in out, out[-2000:]
    assert "1 of 2 fixtures verified" in out
    assert rss - rss_small < 32 * MIB, f"verify took {rss / MIB:.0f} MiB, {rss_small / MIB:.0f} MiB without it"

    summary = tmp_path / "summary.json"
    code, out, rss = probe(suite_command(root, summary), tmp_path)
    _, _, rss_small = probe(suite_command(small_root, tmp_path / "small.json"), tmp_path)
    cases = {c["fixture"]: c for c in json.loads(summary.read_text())["cases"]}
    assert code == 1 and cases["small"]["status"] == "passed", out[-3000:]
    assert cases["huge"]["status"] == "error" and says in cases["huge"]["message"]
    assert rss - rss_small < 32 * MIB, f"the suite took {rss / MIB:.0f} MiB, {rss_small / MIB:.0f} MiB without it"


def test_loading_holds_one_copy_of_the_arrays(tmp_path):
    """A fixture just under the per-array cap verifies, in about one array's worth of memory more, not three."""
    mebibytes = loader.MAX_ARRAY_BYTES // MIB - 16
    big = with_payload(tmp_path / "big", "big", mebibytes)
    without_model(hostile.copy_fixture(tmp_path / "small", hostile.SOURCE, "small"))
    code, out, rss = probe(verify_command(big.parent), tmp_path)
    assert code == 0 and "1 of 1 fixtures verified" in out, out[-2000:]
    _, _, rss_small = probe(verify_command(tmp_path / "small"), tmp_path)
    extra = rss - rss_small
    assert extra < 1.5 * mebibytes * MIB, (f"verifying a {mebibytes} MiB array took {extra / MIB:.0f} MiB more than "
                                           "a small fixture: more than one copy of it")


def test_the_per_fixture_cap_adds_up_every_array(tmp_path):
    """Arrays each under the per-array cap, together over the per-fixture cap: the message gives the total."""
    folder = without_model(hostile.copy_fixture(tmp_path, hostile.SOURCE, "many"))
    per_array = loader.MAX_ARRAY_BYTES // 4
    count = loader.MAX_FIXTURE_BYTES // loader.MAX_ARRAY_BYTES + 1
    names = sorted(hostile.read_meta_raw(folder)["arrays"])[:count]
    meta = hostile.edit_meta(folder, lambda m: [m["arrays"][n].update(shape=[per_array]) for n in names])
    total = sum(loader.declared_bytes(spec) for spec in meta["arrays"].values())
    assert total > loader.MAX_FIXTURE_BYTES
    listing = list_fixtures(tmp_path)
    assert [e.detail for e in listing.errors] == [
        f"fixture 'many': its arrays declare {total} bytes in all, over the {loader.MAX_FIXTURE_BYTES}-byte limit "
        "per fixture; refused before reading them"]


def test_the_caps_leave_room_for_the_gallery():
    """The gallery's largest array and fixture are far under the caps (they are generous, not tight)."""
    listing = list_fixtures()
    sizes = [[loader.declared_bytes(s) for s in f.meta["arrays"].values()] for f in listing.fixtures]
    assert max(max(s) for s in sizes) * 16 < loader.MAX_ARRAY_BYTES
    assert max(sum(s) for s in sizes) * 16 < loader.MAX_FIXTURE_BYTES


# -- items 7 and 8: the parser's own errors, and dtypes the format does not have ----------------------

@pytest.mark.parametrize("name", sorted(BROKEN))
def test_one_broken_fixture_is_its_own_error_in_every_command(name, tmp_path, capsys):
    """list, verify, export and gallery: the broken fixture is an error line naming it; the good ones go on."""
    root, good = broken_root(tmp_path, name)
    where, says = root / name / YAML_NAME, BROKEN[name][1]

    code, out, err = run_cli(capsys, "list", "--fixtures-dir", root)
    assert code == 1 and re.search(rf"^ERROR {re.escape(str(where))}: fixture '{name}': {says}|"
                                   rf"^ERROR {re.escape(str(where))}: {says}", err, re.M), err
    assert all(re.search(rf"^{g}\s", out, re.M) for g in good), out

    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1 and re.search(rf"^FAILED {re.escape(str(where))}: .*{says}", out, re.M), out
    assert f"{len(good)} of {len(good) + 1} fixtures verified" in out

    code, out, err = run_cli(capsys, "export", tmp_path / "json", "--fixtures-dir", root)
    assert code == 1 and re.search(rf"^ERROR {re.escape(str(where))}: .*{says}", err, re.M), err
    assert sorted(p.stem for p in (tmp_path / "json").iterdir()) == sorted(good)

    code, out, err = run_cli(capsys, "gallery", tmp_path / "pages", "--fixtures-dir", root, "--no-plots")
    assert code == 1 and re.search(rf"^ERROR {re.escape(str(where))}: .*{says}", err, re.M), err
    assert sorted(p.stem for p in (tmp_path / "pages").glob("*.md")) == sorted([*good, "README"])
    assert "Broken fixtures (not rendered)" in (tmp_path / "pages" / "README.md").read_text()


def test_a_string_expected_output_is_an_error_not_a_pass_for_every_port(tmp_path):
    """Expected values stored as text compared equal to anything numeric: now the fixture is refused."""
    root, good = broken_root(tmp_path, "dtype-string")
    summary = tmp_path / "summary.json"
    run = hostile.SuiteRun(*_suite(root, summary, "numpy-reference"))
    statuses = {c["fixture"]: c["status"] for c in json.loads(summary.read_text())["cases"]}
    assert statuses == {**dict.fromkeys(good, "passed"), "dtype-string": "error"}, run.output[-3000:]
    assert run.returncode == 1


def test_a_mask_must_be_bool_and_only_a_mask_may_be(tmp_path):
    fid = next(f.id for f in list_fixtures().fixtures if "mask" in f.meta["inputs"] and not f.meta.get("calls"))
    folder = without_model(hostile.copy_fixture(tmp_path, fid))
    hostile.edit_arrays(folder, _as_dtype("mask", np.float32), update_yaml=True)
    assert [e.detail for e in list_fixtures(tmp_path).errors] == [
        f"fixture {fid!r}: array 'mask' has dtype 'float32'; a mask must be bool (SPEC 3.2)"]


def _suite(root: Path, summary: Path, *impls: str, cwd: Path | None = None, pythonpath=()) -> tuple[int, str, list]:
    done = subprocess.run(suite_command(root, summary, *impls), capture_output=True, text=True, errors="replace",
                          cwd=cwd or root.parent, env=hostile.clean_env(pythonpath), timeout=300)
    cases = json.loads(summary.read_text())["cases"] if summary.exists() else []
    return done.returncode, done.stdout + done.stderr, cases


# -- item 6: a plug-in that changes the working directory ----------------------------------------------

CHDIR_PLUGIN = '''
import os
from conformance import reference

def run(fixture):
    """Correct outputs, after moving the whole process somewhere else."""
    os.chdir({elsewhere!r})
    return reference.run(fixture)
'''


def test_a_plugin_that_changes_directory_breaks_no_later_fixture(tmp_path):
    """``--fixtures-dir fixtures`` (relative), a plug-in that ``os.chdir``s, then numpy-reference: all pass."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "wanders.py").write_text(CHDIR_PLUGIN.format(elsewhere=str(elsewhere)))
    root = tmp_path / "fixtures"
    ids = [*plain_good(root), *(without_model(hostile.copy_fixture(root, f)).name
                                for f in ("gru-basic", "simple-rnn-basic") if (loader.gallery_dir() / f).is_dir())]
    summary = tmp_path / "summary.json"
    code, output, cases = _suite(Path("fixtures"), summary, "wanders:run", "numpy-reference", cwd=tmp_path,
                                 pythonpath=[plugins])
    statuses = {(c["impl"], c["fixture"]): c["status"] for c in cases}
    assert statuses == {(impl, fid): "passed" for impl in ("wanders:run", "numpy-reference") for fid in ids}, \
        output[-3000:]
    assert code == 0


def test_a_listed_fixture_s_path_is_absolute(tmp_path, monkeypatch):
    plain_good(tmp_path / "fixtures")
    monkeypatch.chdir(tmp_path)
    listing = list_fixtures(Path("fixtures"))
    assert listing.fixtures and all(f.path.is_absolute() for f in listing.fixtures)
    monkeypatch.chdir(tmp_path.parent)
    assert all(len(f.arrays) for f in listing.fixtures)  # lazily loaded after the move, from the same folder


# -- item 10: terminal escapes in fixture text ----------------------------------------------------------

ESCAPES = ("\x1b[31m", "\x1b]0;owned\x07", "\u202e", "\x9b", "\u2028")
WRONG_PLUGIN = '''
import numpy as np

def run(fixture):
    """Zeros of the right shapes: fails every fixture, so the failure message is printed."""
    return {name: np.zeros_like(value) for name, value in fixture.expected.items()}
'''


def escaped(text: str) -> list[str]:
    """The control and format characters of ``ESCAPES`` found raw in ``text``."""
    return [c for c in "".join(ESCAPES) if not c.isprintable() and c in text]


def escape_root(base: Path) -> Path:
    root = base / "fixtures"
    folder = without_model(hostile.copy_fixture(root, hostile.SOURCE, "escapes"))
    hostile.edit_meta(folder, lambda m: m.update(description="Looks fine " + " ".join(ESCAPES) + " <b>bold</b>"))
    # tags outside the closed vocabulary (conformance/schema/tags.yaml) make a fixture broken: its error quotes them
    tagged = without_model(hostile.copy_fixture(root, hostile.SOURCE, "badtags"))
    hostile.edit_meta(tagged, lambda m: m.update(tags=[*m["tags"], "red\x1b[31m", "rtl\u202etxt"]))
    bad = root / "bad\x1b[2Jname"  # a broken fixture whose folder name is an escape
    bad.mkdir()
    (bad / YAML_NAME).write_text("format_version: 1\n")
    return root


def test_control_characters_in_fixture_text_are_escaped_in_every_command(tmp_path, capsys):
    root = escape_root(tmp_path)
    outputs = {}
    for command in (["list"], ["show", "escapes"], ["explain", "escapes"], ["verify"]):
        code, out, err = run_cli(capsys, *command, "--fixtures-dir", root)
        outputs[command[0]] = out + err
    code, out, err = run_cli(capsys, "gallery", tmp_path / "pages", "--fixtures-dir", root, "--no-plots")
    outputs["gallery"] = out + err
    assert code == 1 and not (tmp_path / "pages" / "badtags.md").exists()  # refused when opened: no page, an error
    for page in ("escapes.md", "README.md"):
        outputs[page] = (tmp_path / "pages" / page).read_text()
    raw = {name: escaped(text) for name, text in outputs.items() if escaped(text)}
    assert not raw, f"control characters printed raw: {raw}"
    assert "red\\x1b[31m" in outputs["list"] and "rtl\\u202etxt" in outputs["list"]
    assert "bad\\x1b[2Jname" in outputs["list"]
    assert "Looks fine \\x1b[31m \\x1b]0;owned\\x07 \\u202e \\x9b \\u2028" in outputs["show"]
    assert "\\x1b[31m" in outputs["explain"] and "bad\\x1b[2Jname" in outputs["verify"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in outputs["escapes.md"] and "<b>" not in outputs["README.md"]


def test_control_characters_in_fixture_text_are_escaped_in_the_suite(tmp_path):
    """Failure lines quote the description's fixture, error lines the folder name and the refused tags: pytest's
    output and the JSON carry escapes."""
    root = escape_root(tmp_path)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "wrong.py").write_text(WRONG_PLUGIN)
    summary = tmp_path / "summary.json"
    code, output, cases = _suite(root, summary, "wrong:run", pythonpath=[plugins])
    statuses = {c["fixture"]: c["status"] for c in cases}
    assert statuses == {"escapes": "failed", "badtags": "error", "bad\\x1b[2Jname": "error"}, output[-3000:]
    assert not escaped(output), output[-3000:]
    assert not escaped(summary.read_text())
    refused = next(c for c in cases if c["fixture"] == "badtags")["message"]
    assert "red\\x1b[31m" in refused, refused  # the first refused tag is named


# -- item 11: gallery OUT_DIR ---------------------------------------------------------------------------

def test_gallery_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    root = tmp_path / "fixtures"
    good = plain_good(root)
    out_dir = tmp_path / "pages"
    out_dir.mkdir()
    (out_dir / "README.md").write_text("my own notes\n")
    code, out, err = run_cli(capsys, "gallery", out_dir, "--fixtures-dir", root, "--no-plots")
    assert code == 2
    with pytest.raises(ValueError) as export_says:  # the same words as export's refusal, for the same folder
        check_out_dir(out_dir)
    prefix = str(export_says.value).split("; ")[0]
    assert err.startswith(f"lstm-conformance gallery: error: {prefix}; render the gallery into a new or empty "
                          "folder, or pass --force to write into it ("), err
    assert (out_dir / "README.md").read_text() == "my own notes\n" and sorted(out_dir.iterdir()) == [out_dir / "README.md"]

    code, out, err = run_cli(capsys, "gallery", out_dir, "--fixtures-dir", root, "--no-plots", "--force")
    assert code == 0, err
    assert sorted(p.stem for p in out_dir.glob("*.md")) == sorted([*good, "README"])
    assert (out_dir / "README.md").read_text().startswith("<!-- generated by")


def test_gallery_refuses_a_file(tmp_path, capsys):
    target = tmp_path / "pages"
    target.write_text("not a folder\n")
    code, _, err = run_cli(capsys, "gallery", target, "--fixtures-dir", tmp_path, "--no-plots", "--force")
    assert code == 2 and f"{target} exists and is not a folder; render the gallery into a new or empty folder" in err
    assert target.read_text() == "not a folder\n"


def test_members_in_fortran_order_or_big_endian_still_load(tmp_path):
    """Not hostile: the in-place reader accepts every layout ``np.load`` did, with the same values and hashes."""
    folder = without_model(hostile.copy_fixture(tmp_path, hostile.SOURCE))
    original = hostile.read_arrays(folder)
    members = hostile.npy_members(folder)
    members["kernel.npy"] = hostile.npy_bytes(np.asfortranarray(original["kernel"]))
    members["x.npy"] = hostile.npy_bytes(original["x"].astype(">f4"))
    hostile.write_members(folder, members)
    (fixture,) = list_fixtures(tmp_path).fixtures
    assert all(np.array_equal(fixture.arrays[k], v) for k, v in original.items())
    assert all(a.dtype.byteorder in "=|" and a.flags.c_contiguous for a in fixture.arrays.values())
