import json

import pytest

from autortc.protocol.messages import ProtocolError, decode, encode, make, valid_trace_id

pytestmark = pytest.mark.unit


def test_round_trip_keeps_fields_and_clocks():
    msg = make("reply_start", trace_id="case-t00-abc", reply_index=0)
    out = decode(encode(msg))
    assert out["type"] == "reply_start" and out["trace_id"] == "case-t00-abc"
    assert out["t_mono"] > 0 and out["t_wall"] > 1.7e9


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "JSON object"),
        (json.dumps({"v": 2, "type": "probe_ready"}).encode(), "field 'v'"),
        (json.dumps({"v": 1, "type": "hello"}).encode(), "field 'type'"),
        (json.dumps({"v": 1, "type": "reply_end", "trace_id": "a", "reply_index": 0}).encode(), "interrupted"),
        (json.dumps({"v": 1, "type": "turn_start", "trace_id": "../etc"}).encode(), "trace_id"),
    ],
)
def test_bad_packets_say_what_is_wrong(payload, needle):
    with pytest.raises(ProtocolError, match=needle):
        decode(payload)


@pytest.mark.parametrize("tid, ok", [("a", True), ("case-t01-ff00aa", True), ("a/b", False), ("a..b", False), ("a\nb", False), ("", False)])
def test_trace_ids_are_folder_safe(tid, ok):
    assert valid_trace_id(tid) is ok
