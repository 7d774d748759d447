"""The built wheel carries the gallery and the schema, and its pytest plug-in loads with ``-p conformance``."""

from __future__ import annotations

import re
import zipfile

from conformance.fixtures import ARRAYS_NAME, YAML_NAME, list_fixtures

from helpers.repo import REPO
from helpers.venvs import clean_env

GALLERY = REPO / "fixtures"


def gallery_ids() -> list[str]:
    listing = list_fixtures(GALLERY)
    assert not listing.errors, f"the repository gallery has broken fixtures: {listing.errors}"
    return [f.id for f in listing.fixtures]


def passed_count(output: str) -> int:
    found = re.search(r"(\d+) passed", output)
    return int(found.group(1)) if found else 0


def test_wheel_carries_every_gallery_fixture_byte_for_byte(conformance_wheel):
    ids = gallery_ids()
    with zipfile.ZipFile(conformance_wheel) as wheel:
        names = set(wheel.namelist())
        for fid in ids:
            for filename in (YAML_NAME, ARRAYS_NAME):
                member = f"conformance/fixtures/{fid}/{filename}"
                assert member in names, f"{conformance_wheel.name} lacks {member}"
                assert wheel.read(member) == (GALLERY / fid / filename).read_bytes(), (
                    f"{member} in {conformance_wheel.name} differs from fixtures/{fid}/{filename}")
        shipped = {n.split("/")[2] for n in names if n.startswith("conformance/fixtures/") and n.count("/") >= 3}
    assert shipped == set(ids), f"the wheel's fixtures differ from the gallery: {sorted(shipped ^ set(ids))}"


def test_wheel_carries_the_keras2_files_and_their_manifest(conformance_wheel):
    from conformance.legacy import MANIFEST_NAME, read_manifest
    files = [MANIFEST_NAME, *(entry["file"] for entry in read_manifest(GALLERY).values())]
    with zipfile.ZipFile(conformance_wheel) as wheel:
        names = set(wheel.namelist())
        for name in files:
            member = f"conformance/fixtures/{name}"
            assert member in names, f"{conformance_wheel.name} lacks {member}"
            assert wheel.read(member) == (GALLERY / name).read_bytes(), f"{member} differs from fixtures/{name}"


def test_wheel_carries_the_schema(conformance_wheel):
    schemas = sorted((REPO / "conformance" / "schema").glob("*.json"))
    with zipfile.ZipFile(conformance_wheel) as wheel:
        names = set(wheel.namelist())
        for schema in schemas:
            member = f"conformance/schema/{schema.name}"
            assert member in names, f"{conformance_wheel.name} lacks {member}"
            assert wheel.read(member) == schema.read_bytes(), f"{member} differs from the repository's copy"
    # Also true with no schema yet: the wheel ships exactly the schema files the repository has.
    assert {n for n in names if n.startswith("conformance/schema/") and n.endswith(".json")} == \
        {f"conformance/schema/{s.name}" for s in schemas}


def test_installed_wheel_is_used_not_the_checkout(installed_venv):
    done = installed_venv.run("-c", "import conformance; print(conformance.__file__)")
    assert done.returncode == 0, done.stderr
    location = done.stdout.strip()
    assert location.startswith(str(installed_venv.path)), f"conformance imported from {location}, not the venv"


def test_dash_p_conformance_loads_the_plugin_without_autoload(installed_venv):
    """With entry point autoload off, ``-p conformance`` alone brings in the options and the suite."""
    env = clean_env(installed_venv, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    args = ["-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "conformance", "--impl", "numpy-reference", "-q"]

    without = installed_venv.run(*args, env=env)
    assert without.returncode != 0 and "unrecognized arguments: --impl" in without.stderr, (
        "control run without -p should not know --impl when autoload is disabled:\n"
        f"{without.stdout[-2000:]}\n{without.stderr[-2000:]}")

    done = installed_venv.run(args[0], args[1], "-p", "conformance", *args[2:], env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert passed_count(output) == len(gallery_ids()), output[-4000:]
    assert not re.search(r"\d+ (failed|skipped|error)", output), output[-4000:]
