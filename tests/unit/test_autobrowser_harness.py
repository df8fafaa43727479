"""autobrowser.harness without LiveKit: each early failure names its cause.

A stub token server (the real one's /token contract) serves web/dist; Chromium really runs.
"""

import functools
import http.server
import json
import subprocess
import threading

import numpy as np
import pytest
import soundfile as sf

from autobrowser.harness import BrowserFailure, BrowserTurnError, BrowserTurnOptions, page_query, run_browser_turn
from autobrowser.static import WEB_DIST
from autobrowser.wavprep import prepare_chromium_wav

pytestmark = pytest.mark.unit


class _Stub(http.server.SimpleHTTPRequestHandler):
    ws_url = "ws://127.0.0.1:9"  # discard port: nothing listens

    def do_GET(self):  # noqa: N802 - stdlib name
        if self.path.startswith("/token"):
            body = json.dumps({"token": "not-a-jwt", "url": self.ws_url}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def stub_token_server():
    subprocess.run([str(WEB_DIST.parent / "build.sh")], check=True, capture_output=True, timeout=300)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Stub, directory=str(WEB_DIST)))
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def case_wav(tmp_path):
    sr = 16_000
    x = np.zeros(sr * 2, np.float32)
    x[sr // 2 : sr] = 0.3 * np.sin(2 * np.pi * 300 * np.arange(sr // 2) / sr)
    p = tmp_path / "case.wav"
    sf.write(str(p), x, sr)
    return p


def test_token_server_down_is_named(tmp_path, case_wav):
    with pytest.raises(BrowserTurnError) as ei:
        run_browser_turn(case_wav, "r1", "http://127.0.0.1:9", tmp_path / "out", timeout_s=30)
    assert ei.value.cause is BrowserFailure.TOKEN_SERVER
    assert "127.0.0.1:9/token" in str(ei.value)


def test_page_missing_is_named(tmp_path, case_wav, stub_token_server):
    with pytest.raises(BrowserTurnError) as ei:
        run_browser_turn(case_wav, "r1", stub_token_server, tmp_path / "out", timeout_s=60,
                         page_url=stub_token_server + "/no-such-dir")
    assert ei.value.cause is BrowserFailure.PAGE_NOT_LOADED
    assert "404" in str(ei.value)


def test_unreachable_livekit_is_a_connect_failure_and_the_trace_is_kept(tmp_path, case_wav, stub_token_server):
    out = tmp_path / "out"
    opts = BrowserTurnOptions(join_s=20.0)
    with pytest.raises(BrowserTurnError) as ei:
        run_browser_turn(case_wav, "r1", stub_token_server, out, timeout_s=90, options=opts)
    assert ei.value.cause in (BrowserFailure.CONNECT_FAILED, BrowserFailure.TOKEN_REJECTED)
    trace = json.loads((out / "browser_trace.json").read_text())
    assert trace["status"] == "error" and trace["failure"]["cause"] == ei.value.cause.value
    assert trace["harness"]["failure"]["cause"] == ei.value.cause.value
    assert (out / "browser_user.wav").is_file() and (out / "webrtc_stats.json").is_file()


def test_page_query_carries_thresholds_and_speech_span(tmp_path, case_wav):
    cap = prepare_chromium_wav(case_wav, tmp_path / "cap.wav")
    q = page_query(BrowserTurnOptions(), cap, room="r", token="t", ws_url="ws://x", trace_id="tid")
    assert q["auto"] == "1" and q["lk_token"] == "t" and q["url"] == "ws://x" and q["trace_id"] == "tid"
    assert q["speech_thr"] == "0.015" and q["silence_ms"] == "400.0"
    assert float(q["speech_ms"]) == pytest.approx(cap.speech_ms)
    assert abs(float(q["speech_ms"]) - 500.0) < 5.0
