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


def test_one_id_check_for_runner_protocol_and_token_server(tmp_path):
    """The same rule everywhere an id crosses: runner folders, protocol trace ids, token names."""
    from autortc.protocol.ids import BadIdError, valid_id
    from autortc.protocol.messages import valid_trace_id
    from autortc.runner.paths import check_id
    from system.credentials import load_or_create
    from system.token_server import mint_token

    creds = load_or_create(tmp_path / "c.json")
    for bad in ("", "../x", "a..b", "a/b", "-lead", "x" * 129, "tab\there"):
        assert not valid_id(bad) and not valid_trace_id(bad)
        with pytest.raises(BadIdError):
            check_id("room", bad)
        with pytest.raises(ValueError, match="room"):
            mint_token(creds, room=bad, identity="u1")
    for good in ("r1", "run_01:case-a.t00", "x" * 128):
        assert valid_id(good) and valid_trace_id(good) and check_id("room", good) == good
