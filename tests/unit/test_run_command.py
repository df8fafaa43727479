"""`autortc run` wiring: --target env never reads the bundled stack, the content check's STT is
a spec the analysis worker loads (the runner does not import the agent under test)."""

import ast
import gc
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autortc.commands import run as run_cmd

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports (``import a.b`` and ``from a.b import c`` give ``a.b``).

    The parse runs with the garbage collector off: on CPython 3.11 a finalizer that formats a
    traceback during ``ast.parse`` (an unretrieved task's error, logged at GC) parses too, and the
    outer parse then fails with "AST constructor recursion depth mismatch": the converter keeps one
    depth counter per interpreter, not per call (python/cpython#106905 is the same message).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        tree = ast.parse(path.read_text())
    finally:
        if was_enabled:
            gc.enable()
    return [m for node in ast.walk(tree) for m in (
        [a.name for a in node.names] if isinstance(node, ast.Import)
        else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])]


def test_env_target_with_profile_never_touches_bundled_state(monkeypatch, tmp_path):
    def boom(*a, **k):
        raise AssertionError("bundled_state() called for --target env")

    monkeypatch.setattr(run_cmd, "bundled_state", boom)
    seen = {}

    async def fake_profile(opts, ports, profile, files, measure_s, measure_pps):
        seen.update(target=opts.target, ports=ports, profile=profile)

        class Out:
            summary = type("S", (), {"run_id": "x", "verdict": "PASS", "gates": [], "cases": []})()
            run_dir = tmp_path
            harness_errors: list = []
            cut: list = []
            exit_code = 0
            reporter = None

        return Out()

    monkeypatch.setattr(run_cmd, "_run_with_profile", fake_profile)
    for k, v in {"LIVEKIT_URL": "ws://10.1.2.3:7880", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s",
                 "AUTORTC_AGENT_NAME": "my-agent", "AUTORTC_RTC_UDP_PORT": "7999"}.items():
        monkeypatch.setenv(k, v)
    app = typer.Typer()
    run_cmd.register(app)
    app.command("noop")(lambda: None)
    r = CliRunner().invoke(app, ["run", "--target", "env", "--profile", "4g_ok", "--no-progress", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert seen["target"].agent_name == "my-agent" and seen["ports"].rtc_udp_port == 7999
    assert seen["profile"] == "4g_ok"


def test_runner_and_metrics_never_import_the_bundled_agent():
    """No module under autortc/runner, autortc/metrics or autortc/bots imports system.*"""
    bad = []
    for pkg in ("runner", "metrics", "bots", "artifacts.py"):
        paths = [ROOT / "autortc" / pkg] if pkg.endswith(".py") else list((ROOT / "autortc" / pkg).rglob("*.py"))
        for p in paths:
            bad += [f"{p.relative_to(ROOT)}: {m}" for m in _imported_modules(p) if m.split(".")[0] == "system"]
    assert not bad, bad


def test_stack_imports_only_the_protocol():
    bad = []
    for p in (ROOT / "system").rglob("*.py"):
        bad += [f"{p.relative_to(ROOT)}: {m}" for m in _imported_modules(p)
                if m.split(".")[0] in ("autortc", "autobrowser") and not m.startswith("autortc.protocol")]
    assert not bad, bad


def test_transcriber_spec_is_loaded_by_name():
    from autortc.metrics.turn import Transcriber
    from autortc.runner.analysis import load_transcriber

    assert load_transcriber(None) is None
    t = load_transcriber("tests.unit.test_run_command:_echo_stt")
    assert isinstance(t, Transcriber) and t.transcribe(None, 16000) == "hello"
    with pytest.raises(ValueError, match="no_such_module"):
        load_transcriber("no_such_module:factory")


def _echo_stt():
    return lambda samples, sr: "hello"
