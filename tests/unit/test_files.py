"""system/files.py: the one atomic write (stack state, results, TTS gold)."""

import os
import stat

import pytest

from system.files import atomic_path, atomic_write_text

pytestmark = pytest.mark.unit


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "state.json"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError, match="writer crashed"):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert p.read_text() == "old"
    assert sorted(os.listdir(p.parent)) == ["state.json"]


def test_mode_is_applied(tmp_path):
    p = atomic_write_text(tmp_path / "gold.json", "x")
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    q = atomic_write_text(tmp_path / "secret.json", "x", mode=0o600)
    assert stat.S_IMODE(q.stat().st_mode) == 0o600
