"""The exported inference function: equals the Python path, is checksummed and verified
before it is deserialised, and the docs snippet runs in a process that cannot import
mp3gan (only jax, numpy and hashlib)."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import signal

from mp3gan import export
from mp3gan.export import export_generator, export_to_file

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "RESTORE.md"

# Prepended to the snippet: any attempt to import mp3gan fails loudly.
NO_MP3GAN = """\
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mp3gan" or name.startswith("mp3gan."):
            raise ImportError("the snippet must not import mp3gan")
sys.meta_path.insert(0, _Block())
import jax
_deserialize = jax.export.deserialize
def _marked(*args, **kwargs):
    print("DESERIALIZE CALLED", file=sys.stderr)
    return _deserialize(*args, **kwargs)
jax.export.deserialize = _marked
"""


def flip_one_bit(path: Path, bit: int = 8 * 1000 + 3) -> None:
    data = bytearray(path.read_bytes())
    data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))


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


def run_snippet(folder: Path, artifact: bytes, damage: bool = False):
    """Run the docs snippet in ``folder`` on ``artifact`` (exported as the docs say)."""
    snippet = docs_snippet()
    artifact_name = re.search(r'open\("([^"]+)", "rb"\)', snippet).group(1)
    path = folder / artifact_name
    path.write_bytes(artifact)
    export.checksum_path(path).write_text(
        f"{hashlib.sha256(artifact).hexdigest()}  {artifact_name}\n"
    )
    if damage:
        flip_one_bit(path)
    script = NO_MP3GAN + snippet + '\nnp.save("audio.npy", audio)\nnp.save("out.npy", restored)\n'
    (folder / "snippet.py").write_text(script)
    return subprocess.run(
        [sys.executable, "snippet.py"], cwd=folder, capture_output=True, text=True, timeout=120
    )


def test_docs_snippet_runs_without_mp3gan(artifact, restorer, tmp_path):
    proc = run_snippet(tmp_path, artifact)
    assert proc.returncode == 0, proc.stderr
    audio_in = np.load(tmp_path / "audio.npy")
    out = np.load(tmp_path / "out.npy")
    assert out.shape == audio_in.shape
    assert np.abs(out - restorer(audio_in, 44100)).max() <= 1e-5


# Issue 16, item 8: a damaged artifact is refused before it is deserialised.
def test_docs_snippet_refuses_a_damaged_artifact(artifact, tmp_path):
    proc = run_snippet(tmp_path, artifact, damage=True)
    assert proc.returncode == 1
    assert "SHA-256 mismatch" in proc.stderr
    assert "DESERIALIZE CALLED" not in proc.stderr
    assert not (tmp_path / "out.npy").exists()


def test_readme_snippet_verifies_the_checksum_too():
    verification = docs_snippet().split("restore = jax.export.deserialize")[0]
    assert "hashlib.sha256(blob).hexdigest() != expected" in verification
    assert verification in (ROOT / "README.md").read_text()


def test_load_verifies_before_deserialising(gen, artifact, tmp_path, monkeypatch):
    path = export_to_file(gen, 44100, tmp_path / "model.jaxexport")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "model.jaxexport.json").read_text())["sha256"] == digest
    if shutil.which("sha256sum"):  # the checksum file is in the format sha256sum reads
        check = subprocess.run(
            ["sha256sum", "-c", "model.jaxexport.sha256"], cwd=tmp_path, capture_output=True
        )
        assert check.returncode == 0, check.stdout
    x = signal(2, 3000)
    expected = jax.export.deserialize(bytearray(artifact)).call(x)
    np.testing.assert_allclose(export.load(path).call(x), expected, atol=1e-6)
    flip_one_bit(path)

    def never(*args, **kwargs):
        raise AssertionError("a damaged artifact was deserialised")

    monkeypatch.setattr(jax.export, "deserialize", never)
    with pytest.raises(export.ExportError, match="model.jaxexport: SHA-256 .* does not match"):
        export.load(path)
    export.checksum_path(path).unlink()
    with pytest.raises(export.ExportError, match="no readable checksum in model.jaxexport.sha256"):
        export.load(path)


def test_export_writes_into_an_ignored_folder_by_default(tmp_path, monkeypatch):
    import subprocess

    from helpers import ROOT, load_cli

    cli = load_cli("export")
    assert cli.default_out(None) == ROOT / "exports" / "mp3gan-base.jaxexport"
    assert cli.default_out(str(tmp_path / "run7")).name == "run7.jaxexport"
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "exports/x.jaxexport"], check=False
    )
    assert ignored.returncode == 0  # git ignores the default place
    monkeypatch.setattr(cli, "EXPORTS", tmp_path / "exports")
    assert cli.main(["--checkpoint", "none"]) == 0
    assert (tmp_path / "exports" / "none.jaxexport").is_file()
