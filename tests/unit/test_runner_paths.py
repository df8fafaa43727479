import pytest

from autortc.runner.paths import BadIdError, check_id, child, new_run_id, new_trace_id

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a\x00b", "a\tb", ".hidden", "x" * 200])
def test_bad_ids_are_refused_with_the_kind_named(bad):
    with pytest.raises(BadIdError, match="case"):
        check_id("case", bad)


def test_child_stays_inside_the_run_folder(tmp_path):
    assert child(tmp_path, "run1", "case_a") == tmp_path / "run1" / "case_a"
    with pytest.raises(BadIdError):
        child(tmp_path, "..")


def test_generated_ids_are_valid_and_distinct():
    ids = {new_trace_id("case_a", 3) for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("case_a-t03-") for i in ids)
    check_id("run_id", new_run_id())
