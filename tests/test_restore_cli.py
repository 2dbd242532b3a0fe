"""launch/restore.py: outputs, folders, bad inputs, refusals, atomic writes, exit codes."""

import importlib.util
import re
import signal as signals
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
import soundfile as sf
from flax import nnx
from helpers import random_generator, signal

from mp3gan import audio, files, restore
from mp3gan.restore import Restorer

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "launch" / "restore.py"


def load_cli():
    spec = importlib.util.spec_from_file_location("restore_cli", CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cli(restorer, monkeypatch):
    """``main(argv) -> exit code`` in-process, with the small model instead of loading a
    checkpoint (the subprocess test below covers real checkpoint loading)."""
    seen = {}

    def fake_from_checkpoint(path=None, chunk_seconds=None, **chunking):
        seen["checkpoint"] = path
        return restorer

    monkeypatch.setattr(Restorer, "from_checkpoint", staticmethod(fake_from_checkpoint))
    main = load_cli().main
    main.seen = seen
    return main


def wav(path: Path, channels: int = 2, n: int = 3000, sr: int = 44100, seed: int = 0) -> Path:
    """A test file; WAV as float, other formats (by extension) as 16/24-bit PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "FLOAT" if path.suffix == ".wav" else "PCM_16" if path.suffix == ".aiff" else None
    sf.write(path, signal(channels, n, seed).T, sr, subtype=subtype)
    return path


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part"]


def test_default_output_name_and_content(cli, restorer, tmp_path):
    src = wav(tmp_path / "song.wav", sr=48000)
    assert cli([str(src), "-q", "--checkpoint", "x"]) == 0
    assert cli.seen["checkpoint"] == "x"
    y, sr = audio.read_audio(tmp_path / "song.restored.wav")
    x, _ = audio.read_audio(src)
    assert sr == 48000 and y.shape == x.shape
    assert np.abs(y - restorer(x, 48000)).max() <= 1e-6


def test_output_file_and_flac(cli, tmp_path):
    src = tmp_path / "in.mp3"
    src.write_bytes(audio.mp3_encode(signal(2, 8000), 44100, 96))
    assert cli([str(src), "-o", str(tmp_path / "out.flac"), "-q"]) == 0
    info = sf.info(tmp_path / "out.flac")
    assert info.format == "FLAC" and info.subtype == "PCM_24" and info.channels == 2


def test_folder_input_recursive(cli, tmp_path):
    wav(tmp_path / "in" / "a.wav")
    wav(tmp_path / "in" / "sub" / "b.aiff", channels=1, sr=22050)
    wav(tmp_path / "in" / "sub" / "b.restored.wav")  # an earlier output: skipped
    (tmp_path / "in" / "notes.txt").write_text("not audio")  # not an audio extension
    assert cli([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-t", "flac", "-q"]) == 0
    outputs = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.*"))
    assert outputs == [Path("a.flac"), Path("sub/b.flac")]
    assert sf.info(tmp_path / "out" / "sub" / "b.flac").samplerate == 22050
    # Without -o, outputs land next to the inputs.
    assert cli([str(tmp_path / "in"), "-q"]) == 0
    assert (tmp_path / "in" / "sub" / "b.restored.wav").is_file()
    assert not (tmp_path / "in" / "sub" / "b.restored.restored.wav").exists()


def test_bad_inputs_one_line_each_and_others_still_run(cli, tmp_path, capsys):
    good = wav(tmp_path / "good.wav")
    mp3 = audio.mp3_encode(signal(2, 44100), 44100, 128)
    bad = {
        "empty.mp3": b"",
        "truncated.mp3": mp3[: len(mp3) // 2],
        "corrupt.mp3": b"ID3" + bytes(range(256)) * 20,
        "text.wav": b"hello, not audio\n" * 100,
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    nan = signal(1, 1000)
    nan[0, 500] = np.nan
    sf.write(tmp_path / "nan.wav", nan.T, 44100, subtype="FLOAT")
    wav(tmp_path / "tenchannel.wav", channels=10, n=500)
    names = [*bad, "nan.wav", "tenchannel.wav"]
    # -t flac: FLAC holds at most 8 channels, so the 10-channel file is a layout error.
    code = cli(
        [str(good), *(str(tmp_path / n) for n in names), "-o", str(tmp_path / "out/")]
        + ["-t", "flac", "-q"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    for name in names:
        hits = [line for line in lines if name in line]
        assert len(hits) == 1, (name, lines)
    assert "NaN" in next(line for line in lines if "nan.wav" in line)
    assert "truncated" in next(line for line in lines if "truncated.mp3" in line)
    assert "at most 8" in next(line for line in lines if "tenchannel.wav" in line)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.flac"]
    assert f"{len(names)} of {len(names) + 1} files failed" in err


def test_output_equal_to_input_is_refused(cli, tmp_path, capsys):
    src = wav(tmp_path / "song.wav")
    before = src.read_bytes()
    assert cli([str(src), "-o", str(src), "-q"]) == 1
    assert "input" in capsys.readouterr().err
    assert src.read_bytes() == before
    # Also through a folder output that maps the file onto itself.
    assert cli([str(src), "-o", str(tmp_path) + "/", "-q"]) == 1
    assert src.read_bytes() == before


def test_missing_file_and_unsupported_extension(cli, tmp_path, capsys):
    src = wav(tmp_path / "song.wav")
    assert cli([str(tmp_path / "nope.mp3"), "-q"]) == 1
    assert cli([str(src), "-o", str(tmp_path / "x.mp3"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "nope.mp3: no such file" in err and "x.mp3: unsupported output extension" in err


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_error_mid_write_leaves_no_file(cli, tmp_path, monkeypatch, exc):
    src = wav(tmp_path / "long.wav", n=20000)
    monkeypatch.setattr(audio, "READ_BLOCK", 1000)  # many blocks, many writes
    real_write = restore.fileio.AtomicWriter.write
    calls = []

    def failing_write(self, block):
        calls.append(block.shape)
        if len(calls) == 3:
            raise exc
        real_write(self, block)

    monkeypatch.setattr(restore.fileio.AtomicWriter, "write", failing_write)
    code = cli([str(src), "-q"])
    assert code == (130 if isinstance(exc, KeyboardInterrupt) else 1)
    assert len(calls) == 3  # it did die mid-way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]
    assert leftovers(tmp_path) == []


def test_help_reads_like_a_cli():
    proc = subprocess.run([sys.executable, str(CLI), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: restore.py [options] INPUT... [-o OUT]")
    assert "examples:" in proc.stdout and "--checkpoint" in proc.stdout


# The fewest distinct layers: the subprocess initialises the model eagerly before
# restoring its weights, and every new op shape costs a compile there.
MICRO = dict(channels=2, down_factors=(2,), dilations=(1,), kernel_size=3, max_channels=2)


def test_subprocess_with_a_real_checkpoint(tmp_path):
    from mp3gan.checkpoint import save_generator

    chunking = {"chunk_length": 2048, "crossfade": 64}
    config = ml_collections.ConfigDict(
        {"data": {"sample_rate": 44100}, "model": {"generator": MICRO}, "restore": chunking}
    )
    save_generator(tmp_path / "ckpt", random_generator(size=MICRO), config)
    good = wav(tmp_path / "good.wav")
    (tmp_path / "bad.mp3").write_bytes(b"\x00" * 4000)
    proc = subprocess.run(
        [sys.executable, str(CLI), str(good), str(tmp_path / "bad.mp3")]
        + ["--checkpoint", str(tmp_path / "ckpt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if "error" in line and "bad.mp3" in line]
    y, _ = audio.read_audio(tmp_path / "good.restored.wav")
    x, _ = audio.read_audio(good)
    expected = Restorer(random_generator(size=MICRO), 44100, **chunking)(x, 44100)
    assert np.abs(y - expected).max() <= 1e-5


# Issue 16, item 1: an output path never equals any input of the run.
def test_an_input_is_never_overwritten_by_another_inputs_output(cli, tmp_path, capsys):
    album = tmp_path / "album"
    flac, wave = wav(album / "song.flac"), wav(album / "song.wav", seed=1)
    before = {p: p.read_bytes() for p in (flac, wave)}
    # song.flac would be written to album/song.wav, which is the other input.
    assert cli([str(album), "-o", str(album), "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "song.flac" in err and "is an input" in err
    assert {p: p.read_bytes() for p in (flac, wave)} == before
    # The same across folders: a/song.flac and b/song.wav into b/.
    a, b = wav(tmp_path / "a" / "song.flac"), wav(tmp_path / "b" / "song.wav", seed=2)
    b_before = b.read_bytes()
    assert cli([str(a), str(b), "-o", str(tmp_path / "b"), "-q"]) == 1
    assert b.read_bytes() == b_before


def test_an_input_reached_through_a_link_is_not_overwritten(cli, tmp_path, capsys):
    # b/song.wav is an input under another name (a linked folder): a/song.flac's output
    # b/song.wav is that input, found only by resolving the link.
    a = wav(tmp_path / "a" / "song.flac")
    real = wav(tmp_path / "b" / "song.wav", seed=3)
    (tmp_path / "b_link").symlink_to(tmp_path / "b")
    before = real.read_bytes()
    assert cli([str(a), str(tmp_path / "b_link" / "song.wav"), "-o", str(tmp_path / "b")]) == 1
    assert real.read_bytes() == before
    assert "is an input" in capsys.readouterr().err


def test_a_rerun_does_not_restore_its_own_outputs(cli, tmp_path):
    album = tmp_path / "album"
    wav(album / "song.flac")
    out = album / "restored"
    assert cli([str(album), "-o", str(out), "-q"]) == 0
    assert cli([str(album), "-o", str(out), "-q"]) == 0
    assert sorted(p.relative_to(album).as_posix() for p in album.rglob("*.*")) == [
        "restored/song.wav",
        "song.flac",
    ]


# Issue 16, item 3: one bad file never stops a batch, whatever goes wrong with it.
def test_a_batch_goes_on_after_any_failure(cli, tmp_path, monkeypatch, capsys):
    from test_audio import wav_with_header

    huge_rate = wav_with_header(tmp_path / "huge_rate.wav", 2_147_483_647)
    explodes = wav(tmp_path / "explodes.wav")
    good = wav(tmp_path / "good.wav")
    real_restore_file = restore.batch.restore_file

    def restore_file(restorer, src, dst, **kwargs):
        if Path(src).name == "explodes.wav":  # what a 320 GiB allocation used to raise
            raise MemoryError("Unable to allocate 320. GiB")
        return real_restore_file(restorer, src, dst, **kwargs)

    monkeypatch.setattr(restore.batch, "restore_file", restore_file)
    code = cli([str(huge_rate), str(explodes), str(good), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "huge_rate.wav: sample rate 2147483647 Hz is outside" in err
    assert "explodes.wav: MemoryError: Unable to allocate" in err
    assert "2 of 3 files failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]
    assert explodes.exists()


def test_infinite_chunk_seconds_is_a_usage_error(tmp_path, capsys):
    src = wav(tmp_path / "song.wav")
    code = load_cli().main([str(src), "--checkpoint", "none", "--chunk-seconds", "inf"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "chunk" in err and "finite" in err


# Issue 16, item 6: SIGTERM and SIGHUP clean up as Ctrl-C does.
@pytest.mark.parametrize("name,status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_mid_write_leaves_no_file(tmp_path, name, status):
    from mp3gan.checkpoint import save_generator

    config = ml_collections.ConfigDict(
        {"data": {"sample_rate": 44100}, "model": {"generator": MICRO}, "restore": {}}
    )
    config.restore.chunk_length, config.restore.crossfade = 2048, 64
    save_generator(tmp_path / "ckpt", random_generator(size=MICRO), config)
    src = wav(tmp_path / "work" / "long.wav", n=44100)
    # The process signals itself once the first block is in the temporary output: a
    # `kill` at the worst moment, without racing the clock.
    script = f"""
import os, runpy, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from mp3gan.restore import fileio
real_write = fileio.AtomicWriter.write
def write(self, block):
    real_write(self, block)
    assert self.tmp.stat().st_size > 0
    os.kill(os.getpid(), signal.{name})
fileio.AtomicWriter.write = write
sys.argv = {[str(CLI), str(src), "--checkpoint", str(tmp_path / "ckpt"), "-q"]!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == status, proc.stderr
    assert f"terminated by {name}; no partial output" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["long.wav"]


# --------------------------------------------------------------------------------------
# The bad-input table of docs/RESTORE.md, row by row
# --------------------------------------------------------------------------------------

DOCS = ROOT / "docs" / "RESTORE.md"
REAL_FROM_CHECKPOINT = Restorer.__dict__["from_checkpoint"]


def bad_input_table() -> dict[str, tuple[str | None, str]]:
    """``input -> (quoted message or None, exit status)`` from the docs' table."""
    text = DOCS.read_text().split("<!-- bad-input-table -->", 1)[1]
    rows = {}
    for line in text.strip().splitlines()[2:]:
        if not line.startswith("|"):
            break
        what, happens, status = (cell.strip() for cell in line.strip().strip("|").split("|"))
        quoted = re.search(r"`([^`]+)`", happens)
        rows[what] = (quoted.group(1) if quoted else None, status)
    return rows


def tiny_checkpoint(folder: Path, factor: float = 1.0) -> Path:
    from mp3gan.checkpoint import save_generator

    config = ml_collections.ConfigDict(
        {"data": {"sample_rate": 44100}, "model": {"generator": MICRO}}
    )
    generator = random_generator(size=MICRO)
    graphdef, state = nnx.split(generator)
    state = jax.tree.map(lambda p: p * np.float32(factor), state)
    save_generator(folder, nnx.merge(graphdef, state), config)
    return folder


def raise_in_write(monkeypatch, exc: BaseException) -> None:
    def write(self, block):
        raise exc

    monkeypatch.setattr(restore.fileio.AtomicWriter, "write", write)


def float_wav(path: Path, x: np.ndarray) -> Path:
    sf.write(path, x.T, 44100, subtype="FLOAT")
    return path


def cli_rows(d: Path, mp: pytest.MonkeyPatch, gen) -> dict:
    """Per row of the table, the arguments of a run that shows it (after any setup)."""
    from test_audio import wav_with_header
    from test_checkpoint import biggest_file, truncate

    def real_loading(*argv):
        mp.setattr(Restorer, "from_checkpoint", REAL_FROM_CHECKPOINT)
        return [str(wav(d / "song.wav")), *argv]

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    def mp3_cut():
        data = audio.mp3_encode(signal(2, 44100), 44100, 128)
        (d / "cut.mp3").write_bytes(data[: len(data) * 6 // 10])
        return [str(d / "cut.mp3")]

    def flac_damaged():
        flac = wav(d / "damaged.flac", n=44100)
        data = bytearray(flac.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 3000] = b"\xff" * 3000
        flac.write_bytes(bytes(data))
        return [str(flac)]

    def one_sample(value):
        x = signal(1, 4410)
        x[0, 100] = value
        return [str(float_wav(d / "odd.wav", x))]

    def many_channels():
        sf.write(d / "many.aiff", np.zeros((100, 185), np.float32), 44100, subtype="PCM_16")
        return [str(d / "many.aiff")]

    def garbage_weights():
        broken = Restorer(
            nnx.merge(*[jax.tree.map(lambda p: p * np.float32(1e30), x) if i else x
                        for i, x in enumerate(nnx.split(gen))]),
            44100, chunk_length=1024, crossfade=64,
        )  # fmt: skip
        mp.setattr(Restorer, "from_checkpoint", staticmethod(lambda *a, **k: broken))
        return [str(wav(d / "song.wav"))]

    def nan_checkpoint():
        return real_loading("--checkpoint", str(tiny_checkpoint(d / "nan", np.nan)))

    def cut_checkpoint():
        ckpt = tiny_checkpoint(d / "cut")
        truncate(biggest_file(ckpt / "generator"))
        return real_loading("--checkpoint", str(ckpt))

    def during_restore(exc):
        raise_in_write(mp, exc)
        return [str(wav(d / "long.wav", n=20000))]

    def album_onto_itself():
        wav(d / "album" / "song.flac"), wav(d / "album" / "song.wav")
        return [str(d / "album"), "-o", str(d / "album")]

    def empty_file():
        (d / "empty.wav").touch()
        return [str(d / "empty.wav")]

    def unopenable():
        mp.setattr(audio, "open", denied, raising=False)  # root is not stopped by chmod
        return [str(wav(d / "locked.wav"))]

    def text_bytes():
        (d / "text.wav").write_bytes(b"not audio at all\n" * 100)
        return [str(d / "text.wav")]

    def no_audio_folder():
        (d / "nothing").mkdir()
        (d / "nothing" / "notes.txt").write_text("liner notes")
        return [str(d / "nothing")]

    def two_onto_one():
        a, b = wav(d / "a" / "x.wav"), wav(d / "b" / "x.flac")
        return [str(a), str(b), "-o", str(d / "out")]

    return {
        "missing file": lambda: [str(d / "nope.wav"), str(wav(d / "good.wav"))],
        "a folder named with `-o` as its own output": album_onto_itself,
        "empty file": empty_file,
        "file that cannot be opened": unopenable,
        "random or text bytes": text_bytes,
        "MP3 cut short": mp3_cut,
        "FLAC with a damaged stream": flac_damaged,
        "NaN or Inf samples": lambda: one_sample(np.nan),
        "a float sample of 3e38": lambda: one_sample(3e38),
        "WAV header claiming 2147483647 Hz": lambda: [
            str(wav_with_header(d / "huge.wav", 2_147_483_647))
        ],
        "AIFF header claiming 185 channels": many_channels,
        "10 channels written as FLAC": lambda: [
            str(wav(d / "ten.wav", channels=10, n=500)),
            "-t",
            "flac",
        ],
        "output path = input path (also via a link or `..`)": lambda: [
            str(wav(d / "sub" / "song.wav")),
            "-o",
            str(d / "sub" / ".." / "sub" / "song.wav"),
        ],
        "two inputs with one output name": two_onto_one,
        "output named `.mp3`": lambda: [str(wav(d / "song.wav")), "-o", str(d / "x.mp3")],
        "several inputs, `-o` naming a file": lambda: [
            str(wav(d / "a.wav")),
            str(wav(d / "b.wav")),
            "-o",
            str(d / "out.wav"),
        ],
        "a folder with no audio files": no_audio_folder,
        "`--chunk-seconds inf`": lambda: real_loading(
            "--checkpoint", "none", "--chunk-seconds", "inf"
        ),
        "missing checkpoint": lambda: real_loading("--checkpoint", str(d / "no-model")),
        "checkpoint with a truncated file": cut_checkpoint,
        "checkpoint with NaN weights": nan_checkpoint,
        "weights that produce garbage": garbage_weights,
        "Ctrl-C during a restore": lambda: during_restore(KeyboardInterrupt()),
        "SIGTERM during a restore": lambda: during_restore(files.Terminated(signals.SIGTERM)),
        "SIGHUP during a restore": lambda: during_restore(files.Terminated(signals.SIGHUP)),
    }


def api_rows(restorer) -> dict:
    """Per API row of the table, a call that shows it."""
    return {
        "API: a `[samples, channels]` array (soundfile's layout)": lambda: restorer(
            signal(2, 70).T, 44100
        ),
        "API: an `int16` array": lambda: restorer(
            np.round(np.clip(signal(2, 3000), -1, 0.99) * 32767).astype(np.int16), 44100
        ),
        "API: a `bool` array": lambda: restorer(signal(2, 300) > 0, 44100),
    }


def test_bad_input_table_is_what_the_cli_does(cli, restorer, gen, tmp_path, capsys):
    table = bad_input_table()
    cases = {}
    assert len(table) > 20
    for i, (what, (quoted, status)) in enumerate(table.items()):
        d = tmp_path / f"row{i}"
        d.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            if what.startswith("API: "):
                cases[what] = api_rows(restorer)[what]
                try:
                    y = cases[what]()
                except audio.AudioError as e:
                    assert status == "AudioError" and quoted in str(e), (what, str(e))
                else:
                    assert status == "none" and y.dtype == np.float32, what
                continue
            cases[what] = cli_rows(d, mp, gen)[what]
            code = cli(cases[what]() + ["-q"])
        err = capsys.readouterr().err
        assert str(code) == status, (what, code, err)
        assert quoted in err and "Traceback" not in err, (what, err)
        assert [p for p in d.rglob(".*") if p.suffix == ".part"] == [], what
    # Every row shows something and every case is a row: the two cannot drift apart.
    assert set(cases) == set(cli_rows(tmp_path, None, gen)) | set(api_rows(restorer))
