"""autobrowser.harness: when a turn is over (the reply-end rule, on turnState snapshots)."""

import pytest

from autobrowser.harness import BrowserTurnOptions, ScriptSegment, _reply_complete

pytestmark = pytest.mark.unit

OPTS = BrowserTurnOptions(reply_tail_ms=300, reply_tail_no_protocol_ms=3000, reply_settle_ms=6000)


def state(**kw):
    base = {"playout_open": False, "playout_idle_ms": 500.0, "reply_starts": 1, "reply_ends": 1,
            "reply_starts_after_last_mic_end": 1, "reply_ends_after_last_mic_end": 1}
    base.update(kw)
    return base


def test_single_turn_ends_after_reply_end_and_a_quiet_tail():
    assert _reply_complete(state(), OPTS, scripted=False)
    assert not _reply_complete(state(playout_idle_ms=100.0), OPTS, scripted=False)
    assert not _reply_complete(state(playout_open=True), OPTS, scripted=False)


def test_a_reply_still_open_keeps_the_turn_going():
    # reply 0 ended (interrupted), reply 1 started: not over
    assert not _reply_complete(state(reply_starts=2, reply_ends=1), OPTS, scripted=False)
    assert not _reply_complete(state(reply_starts=2, reply_ends=1), OPTS, scripted=True)


def test_scripted_turn_waits_for_the_reply_to_the_last_segment():
    # the only reply_end after the last speech is the interrupted reply's: wait for a new reply...
    s = state(reply_starts_after_last_mic_end=0, playout_idle_ms=1000.0)
    assert not _reply_complete(s, OPTS, scripted=True)
    # ...or give up waiting after the settle time
    assert _reply_complete(state(reply_starts_after_last_mic_end=0, playout_idle_ms=6500.0), OPTS, scripted=True)


def test_agent_without_the_protocol_ends_on_long_quiet():
    s = state(reply_starts=0, reply_ends=0, reply_starts_after_last_mic_end=0, reply_ends_after_last_mic_end=0)
    assert not _reply_complete(s, OPTS, scripted=False)
    assert _reply_complete({**s, "playout_idle_ms": 3100.0}, OPTS, scripted=False)


def test_script_segment_anchor_is_checked(tmp_path):
    with pytest.raises(ValueError, match="after"):
        ScriptSegment(tmp_path / "a.wav", after="agent_reply")


def test_tokens_never_reach_error_messages():
    from autobrowser.harness import BrowserFailure, BrowserTurnError

    e = BrowserTurnError(BrowserFailure.PAGE_NOT_LOADED, "at http://h/?auto=1&lk_token=eyJhbGc.x-y_z&url=ws://l")
    assert "eyJ" not in str(e) and "lk_token=<redacted>&url=ws://l" in str(e)
