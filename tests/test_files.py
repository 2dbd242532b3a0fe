"""Tests for mp3gan.files: atomic writes publish whole files or nothing."""

import os
import stat

import pytest

from mp3gan import files


def _visible(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_publishes_on_success_and_creates_the_folder(tmp_path):
    target = tmp_path / "new" / "out.bin"
    with files.atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".out.bin.") and tmp.name.endswith(".part")
        assert not target.exists()  # nothing visible until the block ends
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert _visible(target.parent) == ["out.bin"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_atomic_path_keeps_the_old_file_and_leaves_no_part_on_error(tmp_path, error):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(error):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise error()
    assert target.read_text() == "old"
    assert _visible(tmp_path) == ["out.txt"]


def test_published_files_get_the_permissions_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        files.write_text_atomic(tmp_path / "a.txt", "x")
        with open(tmp_path / "b.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640


def test_write_text_and_bytes_replace_existing_files(tmp_path):
    path = tmp_path / "report.md"
    assert files.write_text_atomic(path, "first") == path
    files.write_text_atomic(path, "zweite — ü\n")
    assert path.read_text(encoding="utf-8") == "zweite — ü\n"
    files.write_bytes_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert _visible(tmp_path) == ["report.md"]


def test_temporary_files_are_unique_per_call(tmp_path):
    a, b = files.temporary_beside(tmp_path / "x"), files.temporary_beside(tmp_path / "x")
    assert a != b and a.is_file() and b.is_file()


def test_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    # Setting the umask to read it races with every other thread creating files (loader
    # threads, orbax's background saves): they would get world-writable files.
    def forbidden(mask):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", forbidden)
    files.write_text_atomic(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").read_text() == "x"
