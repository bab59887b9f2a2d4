"""Atomic writes: the target holds the old content or the whole new one, and no temporary file stays."""

from __future__ import annotations

import os
import stat

import pytest

from openai_batch_api.utils.files.atomic_files import TEMP_NAME, atomic_path, atomic_writer, write_atomically


def test_write_atomically_replaces_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    assert write_atomically(target, [b"new ", b"content"]) == 11
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_atomic_writer_failure_keeps_old_content_and_removes_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="killed halfway"):
        with atomic_writer(target, text=True) as fh:
            fh.write("half of the new")
            raise RuntimeError("killed halfway")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_atomic_path_temporary_beside_target_named_after_it(tmp_path):
    target = tmp_path / "output.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert TEMP_NAME.fullmatch(tmp.name)["name"] == "output.csv"
        tmp.write_text("a,b\n", encoding="utf-8")
        assert not target.exists()
    assert target.read_text(encoding="utf-8") == "a,b\n"
    assert not tmp.exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_atomic_writer_mode_for_secrets(tmp_path):
    target = tmp_path / "server.json"
    with atomic_writer(target, text=True, mode=0o600) as fh:
        fh.write("{}")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

