"""Scripted LLM for LiveKit Agents: keyword rules → reply text, streamed word by word.

A voice-agent QA rig needs replies it can predict (the content check looks for the
scripted words); the rules live in ``system/agent/rules.json``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import shortuuid

DEFAULT_RULES = Path(__file__).with_name("rules.json")


@dataclass(frozen=True)
class Rule:
    id: str
    match_any: tuple[str, ...]
    reply: str


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    default: str

    def reply_for(self, transcript: str) -> tuple[str, str]:
        """Return ``(rule_id, reply)`` for the first rule with a word of ``match_any`` in the transcript."""
        words = set(re.findall(r"[a-z0-9']+", transcript.lower()))
        text = " " + " ".join(re.findall(r"[a-z0-9']+", transcript.lower())) + " "
        for rule in self.rules:
            for m in rule.match_any:
                m = m.lower().strip()
                if (" " in m and f" {m} " in text) or m in words:
                    return rule.id, rule.reply
        return "default", self.default


def load_rules(path: Path = DEFAULT_RULES) -> Rules:
    """Load a rules file; raises ``ValueError`` naming the file and field when it is malformed."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read rules JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("default"), str):
        raise ValueError(f"{path}: expected an object with a string field 'default'")
    rules = []
    for i, r in enumerate(data.get("rules", [])):
        try:
            match = r["match_any"]
            if not isinstance(match, list) or not all(isinstance(m, str) and m for m in match):
                raise TypeError("match_any must be a non-empty list of strings")
            rules.append(Rule(id=str(r.get("id", i)), match_any=tuple(match), reply=str(r["reply"])))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: rules[{i}]: expected 'match_any' (list of words) and 'reply' ({exc})") from exc
    return Rules(rules=tuple(rules), default=data["default"])


def reply_chunks(reply: str, chunk: str) -> list[str]:
    """The reply as the chunks the stream sends: ``"word"`` (a space before every word but the
    first) or ``"sentence"`` (each sentence with its trailing space). Joined, they give ``reply``."""
    if chunk == "word":
        words = reply.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    if chunk == "sentence":
        return [m for m in re.findall(r".+?(?:[.!?]+(?:\s+|$)|$)", reply) if m]
    raise ValueError(f"ScriptedLLM chunk: expected 'word' or 'sentence', got {chunk!r}")


class ScriptedLLM(llm.LLM):
    """An ``llm.LLM`` that answers the last user message from ``Rules``, one word (or sentence) per chunk.

    ``on_event(name, monotonic_s, info)`` is called with ``llm_request``, ``llm_first_token``
    and ``llm_done`` so the agent's turn trace has its LLM stages.
    """

    def __init__(
        self,
        *,
        rules: Rules | None = None,
        on_event: Callable[[str, float, dict[str, Any]], None] | None = None,
        chunk: str = "word",
    ) -> None:
        super().__init__()
        self._rules = rules or load_rules()
        self._on_event = on_event or (lambda *_: None)
        reply_chunks("", chunk)  # raises on a bad name
        self._chunk = chunk

    @property
    def model(self) -> str:
        return "scripted-rules"

    @property
    def provider(self) -> str:
        return "autortc"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        return _ScriptedStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _ScriptedStream(llm.LLMStream):
    async def _run(self) -> None:
        owner: ScriptedLLM = self._llm  # type: ignore[assignment]
        user_text = ""
        for item in reversed(self._chat_ctx.items):
            if getattr(item, "type", None) == "message" and item.role == "user":
                user_text = item.text_content or ""
                break
        t0 = time.monotonic()
        rule_id, reply = owner._rules.reply_for(user_text)
        owner._on_event("llm_request", t0, {"rule": rule_id, "user_text": user_text})
        request_id = shortuuid("scripted_")
        for i, piece in enumerate(reply_chunks(reply, owner._chunk)):
            if i == 0:
                owner._on_event("llm_first_token", time.monotonic(), {"rule": rule_id})
            self._event_ch.send_nowait(
                llm.ChatChunk(id=request_id, delta=llm.ChoiceDelta(role="assistant", content=piece))
            )
        owner._on_event("llm_done", time.monotonic(), {"rule": rule_id, "reply": reply})
