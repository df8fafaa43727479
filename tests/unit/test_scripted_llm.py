import json

import pytest

from system.agent.scripted_llm import load_rules

pytestmark = pytest.mark.unit


def test_bundled_rules_answer_the_weather_question():
    rules = load_rules()
    rid, reply = rules.reply_for("What's the weather like today?")
    assert rid == "weather" and "sunny" in reply


def test_unmatched_text_gets_the_default():
    rules = load_rules()
    assert rules.reply_for("zzz qqq")[0] == "default"


def test_bad_rules_file_names_file_and_field(tmp_path):
    p = tmp_path / "rules.json"
    p.write_text(json.dumps({"default": "ok", "rules": [{"match_any": "weather", "reply": "x"}]}))
    with pytest.raises(ValueError, match=r"rules.json: rules\[0\]"):
        load_rules(p)
    p.write_text("{")
    with pytest.raises(ValueError, match="rules.json"):
        load_rules(p)
