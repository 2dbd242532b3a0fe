"""The exported inference function: equals the Python path, and the docs snippet runs in
a process that cannot import mp3gan (only jax and numpy)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import signal

from mp3gan.export import export_generator, export_to_file

DOCS = Path(__file__).resolve().parent.parent / "docs" / "RESTORE.md"

# Prepended to the snippet: any attempt to import mp3gan fails loudly.
NO_MP3GAN = """\
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mp3gan" or name.startswith("mp3gan."):
            raise ImportError("the snippet must not import mp3gan")
sys.meta_path.insert(0, _Block())
"""


@pytest.fixture(scope="module")
def artifact(gen):
    return export_generator(gen)


def test_export_equals_python_path(artifact, restorer):
    exported = jax.export.deserialize(bytearray(artifact))
    # Symbolic channels and length: any shape, including a single sample.
    for shape in [(3, 6000), (1, 1)]:
        x = signal(*shape, seed=shape[1])
        y = np.asarray(exported.call(x))
        assert y.shape == x.shape
        if shape[1] > restorer.chunk_length:  # shorter clips are padded by the Restorer
            assert np.abs(y - restorer(x, 44100)).max() <= 1e-5
            assert np.abs(y - x).max() > 0.1  # not the identity: the test can fail


def test_export_to_file_writes_metadata(gen, tmp_path):
    path = export_to_file(gen, 44100, tmp_path / "sub" / "model.jaxexport")
    meta = json.loads((tmp_path / "sub" / "model.jaxexport.json").read_text())
    assert meta["sample_rate"] == 44100 and meta["receptive_field_before"] > 0
    assert jax.export.deserialize(bytearray(path.read_bytes())).in_avals[0].ndim == 2
    assert not list((tmp_path / "sub").glob(".*part"))


def docs_snippet() -> str:
    """The python block that follows the ``export-snippet`` marker in docs/RESTORE.md."""
    text = DOCS.read_text()
    match = re.search(r"<!-- export-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/RESTORE.md lost its export snippet"
    return match.group(1)


def test_docs_snippet_runs_without_mp3gan(artifact, restorer, tmp_path):
    snippet = docs_snippet()
    artifact_name = re.search(r'open\("([^"]+)", "rb"\)', snippet).group(1)
    (tmp_path / artifact_name).write_bytes(artifact)
    script = NO_MP3GAN + snippet + '\nnp.save("audio.npy", audio)\nnp.save("out.npy", restored)\n'
    (tmp_path / "snippet.py").write_text(script)
    proc = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    audio_in = np.load(tmp_path / "audio.npy")
    out = np.load(tmp_path / "out.npy")
    assert out.shape == audio_in.shape
    assert np.abs(out - restorer(audio_in, 44100)).max() <= 1e-5
