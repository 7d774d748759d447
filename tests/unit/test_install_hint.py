"""The install hint in every skip names a command that works for how the package was installed.

lstm-conformance is not on PyPI, so ``pip install "lstm-conformance[x]"`` would fail anywhere. Each case
reads a real ``.dist-info`` folder (METADATA and PEP 610's direct_url.json) written the way pip writes them.
"""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest

from conformance.adapters import requires

METADATA = """\
Metadata-Version: 2.4
Name: lstm-conformance
Version: 0.1.0
Requires-Dist: numpy>=1.23
Provides-Extra: tf2onnx
Requires-Dist: keras==3.15.1; extra == 'tf2onnx'
Requires-Dist: tf2onnx==1.17.0; extra == "tf2onnx"
Provides-Extra: fuzz
Requires-Dist: hypothesis>=6; extra == 'fuzz'
"""


def dist(tmp_path, direct_url: dict | None):
    folder = tmp_path / "lstm_conformance-0.1.0.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(METADATA)
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url))
    return metadata.PathDistribution(folder)


@pytest.mark.parametrize("direct_url, expected", [
    ({"url": "file:///home/me/lstm%20conformance", "dir_info": {"editable": True}},
     'pip install -e "/home/me/lstm conformance[tf2onnx]"'),
    ({"url": "file:///src/lstm-conformance", "dir_info": {}}, 'pip install "/src/lstm-conformance[tf2onnx]"'),
    ({"url": "file:///tmp/lstm_conformance-0.1.0-py3-none-any.whl", "archive_info": {}},
     'pip install "keras==3.15.1" "tf2onnx==1.17.0"'),
    (None, 'pip install "keras==3.15.1" "tf2onnx==1.17.0"'),
])
def test_hint_follows_the_installation(tmp_path, direct_url, expected):
    assert requires.extra_install("tf2onnx", dist(tmp_path, direct_url)) == expected


def test_hint_never_names_the_package_on_an_index():
    """Whatever this checkout's installation is, no hint asks an index for lstm-conformance itself."""
    for top in (*requires.EXTRA, *requires.PLAIN):
        hint = requires.install_command(top)
        assert hint.startswith("pip install ") and not re.search(r'(^|[\s"\'])lstm-conformance\[', hint), hint
