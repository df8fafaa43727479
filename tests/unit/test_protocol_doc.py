"""docs/protocol.md and the code agree: the message table's fields, the stage names, the trace
message's fields that reach the turn contract (autortc/artifacts.py AgentBlock)."""

import re
from pathlib import Path

import pytest

from autortc.artifacts import AgentBlock
from autortc.protocol.messages import OPTIONAL, REQUIRED, STAGES

pytestmark = pytest.mark.unit

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(title)
    nxt = re.search(r"^#{2,3} ", DOC[start + len(title):], flags=re.M)
    return DOC[start: start + len(title) + (nxt.start() if nxt else len(DOC))]


def _message_table() -> dict[str, tuple[list[str], list[str]]]:
    rows = {}
    for line in _section("## Messages").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == 4 else None
        if not m:
            continue
        fields = cells[3]
        # nested field lists in parentheses describe a field's value, not message fields
        top = re.sub(r"\([^()]*(\([^()]*\)[^()]*)*\)", "", fields)
        req, _, opt = top.partition("optional")
        rows[m.group(1)] = (re.findall(r"`(\w+)`", req), re.findall(r"`(\w+)`", opt))
    return rows


def test_every_message_type_is_in_the_table_with_the_codes_fields():
    table = _message_table()
    assert set(table) == set(REQUIRED), (sorted(table), sorted(REQUIRED))
    for kind, (req, opt) in table.items():
        assert tuple(req) == REQUIRED[kind], f"{kind}: doc requires {req}, code {REQUIRED[kind]}"
        assert tuple(opt) == OPTIONAL[kind], f"{kind}: doc lists optional {opt}, code {OPTIONAL[kind]}"


def test_stage_names_agree():
    sect = _section("### Stage names")
    first_para = sect.split("\n", 1)[1].split("\n\n")[0]
    assert tuple(re.findall(r"`(\w+)`", first_para)) == STAGES
    assert "user_speech_end" in STAGES  # the agent's own end-of-turn reference (reported vs heard)


def test_trace_message_fields_reach_the_contract():
    agent_fields = set(AgentBlock.model_fields)
    for f in REQUIRED["trace"] + OPTIONAL["trace"]:
        if f != "trace_id":
            assert f in agent_fields, f"trace message field {f!r} has no place in trace.json's agent block"


def test_room_metadata_keys_are_the_runners():
    import inspect

    from autortc.runner import suite

    sect = _section("### Rooms")
    keys = set(re.findall(r"^\| `(\w+)` \|", sect, flags=re.M))
    src = inspect.getsource(suite)
    written = set(re.findall(r'meta = \{([^}]*)\}', src)[0].split(",")) | set(re.findall(r'meta = \{([^}]*)\}', src)[1].split(","))
    written = {re.search(r'"(\w+)"', w).group(1) for w in written if '"' in w}
    assert keys == written, (keys, written)
