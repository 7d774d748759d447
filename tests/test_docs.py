"""README.md and SPEC.md quote citations and a worked digest: they must stay true of the gallery."""

import re
from pathlib import Path

import pytest

from conformance.fixtures import UNDIGESTED_FIELDS, canonical_json, resolve_citation

REPO = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"\b([a-z0-9][a-z0-9._-]*@sha256:[0-9a-f]{8})\b")


@pytest.mark.parametrize("doc", ["README.md", "SPEC.md"])
def test_every_quoted_citation_resolves(doc, gallery):
    cited = set(CITATION.findall((REPO / doc).read_text()))
    real = [c for c in cited if not c.startswith(("my-", "id@"))]
    assert real, f"{doc} quotes no citation of the gallery"
    for citation in real:
        resolve_citation(gallery, citation)  # raises FixtureError on a stale digest


def test_spec_worked_digest_matches_the_fixture(gallery):
    spec = (REPO / "SPEC.md").read_text()
    fixture = next(f for f in gallery if f.id == "lstm-seed-question")
    content = canonical_json({k: v for k, v in fixture.meta.items() if k not in UNDIGESTED_FIELDS})
    size = int(re.search(r"The canonical JSON is (\d+) bytes", spec).group(1))
    digest = re.search(r"Its sha256 is `([0-9a-f]{64})`", spec).group(1)
    assert size == len(content.encode())
    assert f"sha256:{digest}" == fixture.digest
