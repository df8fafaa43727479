"""``autortc run``: run a suite against the bundled stack or any LiveKit agent speaking the protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import typer

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "cases" / "all_cases.json"


BUNDLED_TRANSCRIBER = "autortc.commands.run:bundled_whisper"
"""The content check's default STT: the bundled agent's faster-whisper, loaded in the analysis
worker by this spec (the runner itself never imports the agent under test)."""


def bundled_whisper():
    """Factory for :data:`BUNDLED_TRANSCRIBER`: faster-whisper tiny.en on one CPU thread, beam 5.

    Beam 5, not the agent's greedy decoding: the keywords gate FAILs a P0 turn on a missing
    word, and greedy tiny.en dropped "should arrive on Friday afternoon" from a complete
    recorded reply (fast suite, endpoint_numbers) that beam 5 transcribes."""
    from autortc.metrics.turn import FunctionTranscriber
    from system.agent.stt_whisper import WhisperOptions, WhisperTranscriber

    return FunctionTranscriber(WhisperTranscriber(WhisperOptions(cpu_threads=1, beam_size=5)).transcribe)


def bundled_state() -> dict:
    """``state.json`` of the running bundled stack; raises ``RuntimeError`` when it is not running."""
    import json

    from system.stack import Stack

    stack = Stack()
    if not stack.is_up():
        raise RuntimeError("the bundled stack is not running: start it with `autortc stack up`")
    return json.loads(stack.state_path.read_text())


def bundled_target():
    """The bundled stack's target; raises ``RuntimeError`` when it is not running."""
    from autortc.bots.target import Target
    from system.agent.config import AGENT_NAME
    from system.credentials import load_or_create

    creds = load_or_create()
    return Target(livekit_url=bundled_state()["livekit_url"], api_key=creds.api_key, api_secret=creds.api_secret,
                  agent_name=AGENT_NAME)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StackPorts:
    """Where the path must forward to: the SFU's UDP media port, the address it advertises
    (``None``: the path's default) and, for ``--via browser``, the token server URL."""

    rtc_udp_port: int = 7882
    node_ip: str | None = None
    token_url: str | None = None


def stack_ports(target_kind: str, token_url: str | None) -> StackPorts:
    """Bundled: from the running stack's state; env: ``AUTORTC_RTC_UDP_PORT`` / ``AUTORTC_NODE_IP``
    (the env target's SFU must be started advertising the path's address, docs/network.md)."""
    if target_kind == "bundled":
        state = bundled_state()
        node_ip = state.get("node_ip")
        if node_ip in (None, "127.0.0.1"):
            raise RuntimeError("--profile needs the stack's SFU to advertise the relay: restart it with `autortc stack up --net`")
        return StackPorts(rtc_udp_port=int(state.get("rtc_udp_port", 7882)), node_ip=node_ip, token_url=token_url)
    try:
        port = int(os.environ.get("AUTORTC_RTC_UDP_PORT", "7882"))
    except ValueError as exc:
        raise ValueError(f"environment: AUTORTC_RTC_UDP_PORT={os.environ['AUTORTC_RTC_UDP_PORT']!r} is not a port") from exc
    return StackPorts(rtc_udp_port=port, node_ip=os.environ.get("AUTORTC_NODE_IP") or None, token_url=token_url)


async def _run_with_profile(opts, ports: StackPorts, profile_name: str, extra_files: list[Path], measure_s: float,
                            measure_pps: float):
    """Run the suite with the user side behind the impairment path; record configured vs measured.

    The user side's LiveKit FFI (bots, probe) starts inside the path's namespace (its media and
    signaling cross the relay); with ``--via browser`` Chromium runs there too, loading the page
    through a forwarder of the token server; the agent stays outside, unimpaired.  The path is
    measured with a probe train before the suite and after the last case; both go into the one
    ``summary.json`` (``extra.network``) the runner writes, and ``network.json``.
    """
    import json
    import shlex
    from urllib.parse import urlsplit

    from autortc.network.path import ImpairedPath
    from autortc.network.profiles import get_profile
    from autortc.network.relay import TcpForwarder
    from autortc.runner.suite import run_suite
    from autortc.runner.users import BrowserPath

    prof = get_profile(profile_name, [str(p) for p in extra_files])
    http = urlsplit(opts.target.http_url)
    async with ImpairedPath(prof, server_udp=("127.0.0.1", ports.rtc_udp_port),
                            server_tcp=(http.hostname or "127.0.0.1", http.port or 80),
                            node_ip=ports.node_ip) as path:
        path.attach_livekit_ffi()
        before = await path.measure(duration_s=measure_s, rate_pps=measure_pps)
        target = dataclasses.replace(opts.target, livekit_url=path.livekit_url)
        fwd = None
        browser_path = None
        if opts.via == "browser":
            from autobrowser.chromium import find_chromium

            tok = urlsplit(ports.token_url or "")
            if not tok.hostname:
                raise RuntimeError("--via browser --profile needs the token server URL")
            page_url = ports.token_url
            if path.netns:
                # the page in the namespace cannot reach the host's loopback: forward the token
                # server (plain TCP, not impaired: it serves the page, not media)
                fwd = await TcpForwarder(listen=(path.node_ip, tok.port or 80), upstream=(tok.hostname, tok.port or 80)).start()
                page_url = f"http://{path.node_ip}:{tok.port or 80}"
            wrapper = opts.out_root / f".chromium-{prof.name}.sh"
            wrapper.parent.mkdir(parents=True, exist_ok=True)
            # the page's AudioWorklets need a secure context: the forwarded origin is not localhost
            # (and its SFU URL must then count as trustworthy too, or it is blocked as mixed content)
            argv = path.wrap_argv([str(find_chromium()),
                                   f"--unsafely-treat-insecure-origin-as-secure={page_url},{path.livekit_url}"])
            wrapper.write_text("#!/bin/sh\nexec " + shlex.join(argv) + ' "$@"\n')
            wrapper.chmod(0o755)
            browser_path = BrowserPath(page_url=page_url, livekit_url=path.livekit_url, chromium=str(wrapper.resolve()))
        network: dict = {"profile": prof.name,
                         "configured": {"uplink": prof.uplink.model_dump(), "downlink": prof.downlink.model_dump()},
                         "measured_before": before.to_dict(), "via": opts.via}

        async def finalize() -> dict:
            after = await path.measure(duration_s=measure_s, rate_pps=measure_pps)
            network.update({"measured_after": after.to_dict(), "applied": bool(before.applied and after.applied),
                            "path": path.stats()})
            return {"network": network}

        try:
            outcome = await run_suite(dataclasses.replace(opts, target=target, finalize=finalize,
                                                          browser_path=browser_path))
        finally:
            if fwd is not None:
                await fwd.aclose()
    (outcome.run_dir / "network.json").write_text(json.dumps(network, indent=2, default=str))
    return outcome


def bundled_token_url() -> str:
    return bundled_state()["token_url"]


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        suite: str = typer.Option("fast", help="suite name in the cases file (fast, nightly, ...)"),
        cases: Path = typer.Option(DEFAULT_CASES, help="cases JSON (WAV paths relative to it)"),
        jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="cases in parallel rooms (unless every room talks, "
                                 "rooms are set up and torn down and results written only between live turns; the "
                                 "analyses run beside them at the lowest priority); ./run_suite.sh passes 2"),
        concurrent_turns: int = typer.Option(1, "--concurrent-turns", min=1, help="at most this many rooms with a turn "
                                             "live at once (user speaking to agent done); 1: each turn has the agent "
                                             "to itself; = --jobs: every room talks at once, a load test"),
        max_attempts: int = typer.Option(3, min=1, help="attempts per case on harness problems"),
        turns: int = typer.Option(None, help="conversation suites: number of turns"),
        gates: Path = typer.Option(None, help="TOML overriding gate thresholds for this run"),
        out: Path = typer.Option(Path("output/runs"), help="runs folder"),
        run_id: str = typer.Option(None, help="run id (default: UTC time + random)"),
        only: list[str] = typer.Option([], "--only", help="run only these case ids"),
        via: str = typer.Option("bots", help="bots (LiveKit SDK) or browser (headless Chromium)"),
        target: str = typer.Option("bundled", help="bundled (autortc stack) or env (LIVEKIT_URL/_API_KEY/_API_SECRET, AUTORTC_AGENT_NAME)"),
        perceptual: bool = typer.Option(False, "--perceptual/--no-perceptual", help="score ViSQOL MOS-LQO per turn (~4.5 s CPU each)"),
        profile: str = typer.Option(None, help="network profile for the user side's media (autortc net profiles); needs `autortc stack up --net`"),
        profiles_file: list[Path] = typer.Option([], "--profiles-file", help="extra TOML profiles (repeatable)"),
        measure_s: float = typer.Option(30.0, help="--profile: seconds of probe train before and after the suite"),
        measure_pps: float = typer.Option(200.0, help="--profile: probe packets per second (loss within ±0.5 point needs thousands)"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        repeat: int = typer.Option(1, "--repeat", min=1, help="run the same cases N times (folders <run>-r1..rN); "
                                   "flake rate per case"),
        baseline: str = typer.Option(None, "--baseline", help="compare with this baseline (autortc baseline save); "
                                     "exit 1 on a significant regression"),
        effects: Path = typer.Option(None, help="--baseline: TOML of minimum effects (default autortc/baseline_effects.toml)"),
        baselines: Path = typer.Option(Path("output/baselines"), help="--baseline: baselines folder"),
        transcriber: str = typer.Option(BUNDLED_TRANSCRIBER, help="content check's STT: 'module:factory' returning a "
                                        "Transcriber (autortc.metrics.turn); '' skips the content check"),
    ) -> None:
        """Run a suite; exit 0 when all gates pass, 1 when a gate fails, 2 when the harness failed."""
        from autortc.bots.target import Target
        from autortc.cases import CaseFileError
        from autortc.runner.suite import RunOptions, run_suite

        if via not in ("bots", "browser"):
            raise typer.BadParameter(f"--via {via!r}: expected bots or browser")
        if target not in ("bundled", "env"):
            raise typer.BadParameter(f"--target {target!r}: expected bundled or env")
        try:
            # --target env never touches the bundled stack's state
            tgt = bundled_target() if target == "bundled" else Target.from_env()
            token_url = bundled_token_url() if target == "bundled" else os.environ.get("AUTORTC_TOKEN_URL")
            ports = stack_ports(target, token_url) if profile else None
        except (RuntimeError, ValueError) as exc:
            typer.echo(f"target: {exc}", err=True)
            raise typer.Exit(2) from exc
        from autortc.baseline import BaselineError, delta_table, flake_table, load_baseline, load_effects
        from autortc.baseline import MetricDelta, FlakeRate
        from autortc.console import get_console, get_verbosity
        from autortc.runner.repeat import run_repeated

        try:
            base = load_baseline(baseline, root=baselines) if baseline else None
            eff = load_effects(effects) if baseline else None
        except BaselineError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        con = get_console()
        verbosity = get_verbosity()

        def repeat_done(i: int, o) -> None:  # an earlier repeat: its closing line only
            if o.reporter is not None:
                o.reporter.close()
                con.print(o.reporter.closing_line(o.summary, o.exit_code))

        try:
            opts = RunOptions(target=tgt, cases_path=cases, suite=suite, out_root=out, run_id=run_id, jobs=jobs,
                              concurrent_turns=concurrent_turns, max_attempts=max_attempts, turns=turns, gates_path=gates, only=tuple(only),
                              perceptual=perceptual, via=via, progress=progress, token_url=token_url,  # type: ignore[arg-type]
                              transcriber=transcriber or None, verbosity=verbosity)
            one = (lambda o: _run_with_profile(o, ports, profile, profiles_file, measure_s, measure_pps)) if profile else None
            res = asyncio.run(run_repeated(opts, repeat, baseline=base, effects=eff, run=one, on_repeat=repeat_done))
        except (CaseFileError, ValueError, RuntimeError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        outcome = res.outcomes[-1]
        if not con.is_terminal:  # a file or CI log has no width: do not fold the tables at rich's default 80
            con.width = max(con.width, 120)
        rep = outcome.reporter
        if rep is not None:
            rep.close()
        if "repeat" in res.extra:
            con.print(flake_table([FlakeRate(**f) for f in res.extra["repeat"]["flake"]],
                                  title=f"flake over {len(res.outcomes)} repeats (PASS/WARN vs FAIL)"))
        if "baseline" in res.extra:
            b = res.extra["baseline"]
            con.print(delta_table([MetricDelta(**r) for r in b["rows"]],
                                  title=f"vs baseline {b['name']} (median shift, 95 % bootstrap CI)"), overflow="fold")
        shown = {o.summary.run_id for o in res.outcomes}
        for o in res.outcomes:  # harness problems not tied to a case line (finalize, report, summarize)
            case_ids = {e.case_id for e in o.summary.cases}
            for e in o.harness_errors:
                head = e.split(":", 1)[0].removeprefix("case=").split("/", 1)[0]
                if head not in case_ids:
                    con.print(f"HARNESS {o.summary.run_id}: {e}" if len(shown) > 1 else f"HARNESS {e}", overflow="fold")
            if o.cut:
                con.print(f"cut (not finished): {', '.join(o.cut)}", overflow="fold")
        report = outcome.run_dir / "report.html"
        if rep is not None:
            rep.run_finished(outcome.summary, report, res.exit_code)
        else:
            typer.echo(f"run {outcome.summary.run_id}: {outcome.summary.verdict} — report {report} — exit {res.exit_code}")
        raise typer.Exit(res.exit_code)
