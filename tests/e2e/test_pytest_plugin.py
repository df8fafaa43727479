"""The pytest plugin against the real stack: `pytest examples/` passes (one room per test, artifacts per
test, JUnit with the turn folders), and a test whose assertion is broken on purpose fails with a
message that shows the measured value, what was heard and where the artifacts are; -k and -x work."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _pytest(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_examples_pass_with_artifacts_and_junit(stack, tmp_path):
    out, junit = tmp_path / "art", tmp_path / "junit.xml"
    r = _pytest(["examples/", "--autortc-out", str(out), "--autortc-run-id", "ex1", f"--junitxml={junit}", "-q"], ROOT)
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    # The plugin must work; the agent need not be healthy: on a loaded 2-core machine a real gate can fail
    # (e.g. an audible dropout).  Any failure must then be a gate verdict, stated with value and threshold.
    failures: dict[str, str] = {}
    for c in cases:
        for f in list(c.iter("failure")) + list(c.iter("error")):
            msg = (f.get("message") or "") + (f.text or "")
            assert "GateFailure" in msg and "failed its gates" in msg and "artifacts:" in msg, msg[-3000:]
            failures[c.get("name")] = msg
    assert r.returncode in (0, 1), r.stdout[-4000:] + r.stderr[-2000:]
    props = {c.get("name"): [p.get("value") for p in c.iter("property") if p.get("name") == "autortc_turn"]
             for c in cases}
    assert set(props) == {"test_weather", "test_greeting_then_weather_in_one_room"}, props
    said = {"test_weather": 1, "test_greeting_then_weather_in_one_room": 2}  # turns each example says
    for name, dirs in props.items():
        if name not in failures:
            assert len(dirs) == said[name], (name, dirs)
        else:
            # a turn that fails its gates ends its test (the next say never runs): that turn's folder is
            # the last one recorded and the one the failure names (a CI run: the agent heard the greeting
            # as "The low there", keywords FAIL, so the conversation had one turn)
            assert 1 <= len(dirs) <= said[name] and f"artifacts: {dirs[-1]}" in failures[name], (name, dirs, failures[name][-800:])
    for dirs in props.values():
        for d in dirs:
            p = Path(d)
            assert p.is_relative_to(out / "ex1") and (p / "result.json").is_file() and (p / "post_rtc_reply.wav").is_file()
    # one folder per test
    assert sorted(x.name for x in (out / "ex1").iterdir()) == ["test_greeting_then_weather_in_one_room", "test_weather"]


BROKEN = '''
def test_fine(autortc):
    turn = autortc.say("cases/wavs/content_weather.wav")
    assert "sunny" in turn.heard_text


def test_broken_on_purpose(autortc):
    turn = autortc.say("cases/wavs/content_weather.wav", gates=False)  # reach the broken assertion whatever the gates say
    assert "snowing" in turn.heard_text


def test_never_runs_with_x(autortc):
    autortc.say("cases/wavs/endpoint_short_hello.wav")
'''


def test_a_broken_assertion_fails_readably(stack, tmp_path):
    t = tmp_path / "voice" / "test_broken_voice.py"
    t.parent.mkdir()
    t.write_text(BROKEN)
    # -k "purpose or never", not "broken": -k also matches the tmp folder's name, which has "broken" in it
    r = _pytest([str(t), "-x", "-k", "purpose or never", "--autortc-out", str(tmp_path / "art"), "-rA",
                 "--autortc-run-id", "broken"], ROOT)
    text = r.stdout + r.stderr
    assert r.returncode == 1, text[-4000:]
    last = r.stdout.strip().splitlines()[-1]
    assert "1 failed" in last and "1 deselected" in last and "passed" not in last, last  # -k kept 2 of 3, -x stopped after the first
    assert "PASSED" not in text and "test_never_runs_with_x" not in text, text[-3000:]
    # pytest's own rewrite shows what was heard; the plugin's section names the turn and its folder
    assert "assert 'snowing' in " in text and "sunny" in text, text[-4000:]
    assert "autortc turns" in text and "EoT→first audio" in text and str(tmp_path / "art" / "broken") in text, text[-4000:]
    assert "GateFailure" not in text, text[-4000:]  # gates=False: the failure is the broken assertion
