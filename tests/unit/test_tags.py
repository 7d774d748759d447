"""One closed vocabulary of tags (conformance/schema/tags.yaml): the gallery, the schema and the fuzzer agree on it,
and a user may type either spelling of ``_``/``-``."""

from __future__ import annotations

import pytest

from conformance import cli, tags
from conformance.errors import FixtureError
from conformance.fixtures import list_fixtures, load_fixture
from conformance.fuzz import space

import hostile

GALLERY = list_fixtures().fixtures


def test_the_gallery_and_the_fuzzer_use_only_the_vocabulary():
    used = {t for f in GALLERY for t in f.tags}
    assert used <= set(tags.vocabulary()), sorted(used - set(tags.vocabulary()))
    assert set(space.TAGS) <= set(tags.vocabulary()), sorted(set(space.TAGS) - set(tags.vocabulary()))
    assert all(meaning.strip() for meaning in tags.vocabulary().values())


def test_no_two_tags_differ_only_in_their_separator():
    keys = [t.replace("-", "_") for t in tags.vocabulary()]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("tag, error", [("my-own-tag", "'my-own-tag' is not a tag of the vocabulary ("),
                                        ("mask_trailing", "it spells 'mask-trailing' so")])
def test_a_tag_outside_the_vocabulary_is_a_broken_fixture(tmp_path, tag, error):
    folder = hostile.copy_fixture(tmp_path)
    hostile.edit_meta(folder, lambda meta: meta.update(tags=[*meta["tags"], tag]))  # digest recomputed
    with pytest.raises(FixtureError, match=r"\$\.tags\[\d+\]: ") as raised:
        load_fixture(folder).arrays  # noqa: B018 - the schema is checked when the fixture is opened
    assert error in str(raised.value)


def test_either_spelling_selects_the_same_fixtures(capsys):
    hyphenated = {f.id for f in GALLERY if "mask-trailing" in f.tags}
    assert hyphenated
    for spelling in ("mask-trailing", "mask_trailing"):
        assert cli.main(["list", "--tag", spelling]) == 0
        out = capsys.readouterr().out
        assert {line.split()[0] for line in out.splitlines()[1:] if line and not line.startswith("(")} == hyphenated
