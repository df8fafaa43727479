"""Settings of the bundled agent, from environment variables so the stack CLI can set them."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

AGENT_NAME = "autortc-agent"


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Turn-taking and model settings. Env var ``AUTORTC_AGENT_<FIELD>`` overrides each field.

    Sources: the seed tuned the VAD silence window 550 → 200 ms; interruption needs
    0.5 s of user speech (LiveKit Agents' default) so a "mm-hmm" backchannel (~300 ms)
    does not stop the agent while a real barge-in (≥ 0.6 s of speech) does.
    """

    agent_name: str = AGENT_NAME
    vad_min_silence_s: float = 0.2
    vad_activation_threshold: float = 0.5
    vad_min_speech_s: float = 0.05
    endpointing_min_delay_s: float = 0.0
    endpointing_max_delay_s: float = 3.0
    interruption_min_duration_s: float = 0.5
    # A barge-in needs >= 3 words of (interim) transcript: "mm-hmm", "okay", "yeah right" keep
    # the agent talking; "wait, stop, please stop" interrupts it while the user is still speaking.
    interruption_min_words: int = 3
    false_interruption_timeout_s: float = 1.0
    resume_false_interruption: bool = True
    preemptive_generation: bool = True
    turn_detector: str = "vad"  # "vad" or "v1-mini" (LiveKit's local audio end-of-turn model)
    rules_path: str = str(Path(__file__).with_name("rules.json"))
    llm: str = "scripted"  # "scripted" (rules.json) or "transformers" (needs the `llm` extra and llm_model)
    llm_model: str = ""  # a local folder with a causal LM and its tokenizer (nothing is downloaded)
    tts_length_scale: float = 1.0
    whisper_threads: int = 2

    @classmethod
    def from_env(cls) -> AgentConfig:
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"AUTORTC_AGENT_{f.name.upper()}")
            if raw is None:
                continue
            try:
                if f.type in ("bool", bool):
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif f.type in ("float", float):
                    values[f.name] = float(raw)
                elif f.type in ("int", int):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ValueError(f"AUTORTC_AGENT_{f.name.upper()}={raw!r}: expected {f.type}") from exc
        return cls(**values)  # type: ignore[arg-type]
