"""Optional LLM backend: a local ``transformers`` causal LM, streamed token by token.

Install with the ``llm`` extra (``pip install -e .[llm]``: torch + transformers, several GB);
the default stack stays torch-free and uses the scripted responder. Select it with
``AUTORTC_AGENT_LLM=transformers`` and ``AUTORTC_AGENT_LLM_MODEL=<local model folder>``
(nothing is downloaded: the folder must hold the model and its tokenizer).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.utils import shortuuid


@dataclass(frozen=True, kw_only=True)
class HFOptions:
    max_new_tokens: int = 48
    temperature: float = 0.0  # 0 = greedy: the same prompt gives the same reply
    system_prompt: str = "You are a concise voice assistant. Answer in one or two short sentences."


class TransformersLLM(llm.LLM):
    """``llm.LLM`` over ``model`` + ``tokenizer`` (already loaded; see ``from_pretrained``).

    Generation runs in a thread with ``TextIteratorStreamer``; each decoded piece becomes a
    ``ChatChunk`` as soon as it exists. ``on_event`` gets ``llm_request``/``llm_first_token``/``llm_done``.
    """

    def __init__(self, *, model: Any, tokenizer: Any, options: HFOptions | None = None,
                 on_event: Callable[[str, float, dict[str, Any]], None] | None = None) -> None:
        super().__init__()
        self._model = model
        self._tok = tokenizer
        self._opts = options or HFOptions()
        self._on_event = on_event or (lambda *_: None)
        self._lock = threading.Lock()  # one generation at a time per model

    @classmethod
    def from_pretrained(cls, path: str, **kw: Any) -> TransformersLLM:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return cls(model=AutoModelForCausalLM.from_pretrained(path, local_files_only=True),
                   tokenizer=AutoTokenizer.from_pretrained(path, local_files_only=True), **kw)

    @property
    def model(self) -> str:
        return getattr(getattr(self._model, "config", None), "_name_or_path", "") or "transformers"

    @property
    def provider(self) -> str:
        return "transformers-local"

    def prompt(self, chat_ctx: llm.ChatContext) -> str:
        lines = [self._opts.system_prompt]
        for item in chat_ctx.items:
            if getattr(item, "type", None) == "message" and item.role in ("user", "assistant"):
                lines.append(f"{item.role}: {item.text_content or ''}")
        lines.append("assistant:")
        return "\n".join(lines)

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
             parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN, tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
             extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN) -> llm.LLMStream:
        return _HFStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _HFStream(llm.LLMStream):
    async def _run(self) -> None:
        from transformers import TextIteratorStreamer

        owner: TransformersLLM = self._llm  # type: ignore[assignment]
        tok, opts = owner._tok, owner._opts
        inputs = tok(owner.prompt(self._chat_ctx), return_tensors="pt")
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        gen_kw = dict(**inputs, streamer=streamer, max_new_tokens=opts.max_new_tokens,
                      do_sample=opts.temperature > 0, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        if opts.temperature > 0:
            gen_kw["temperature"] = opts.temperature

        def generate() -> None:
            with owner._lock:
                owner._model.generate(**gen_kw)

        owner._on_event("llm_request", time.monotonic(), {})
        loop = asyncio.get_running_loop()
        worker = loop.run_in_executor(None, generate)
        request_id = shortuuid("hf_")
        first = True
        it = iter(streamer)
        while True:
            piece = await loop.run_in_executor(None, next, it, None)
            if piece is None:
                break
            if not piece:
                continue
            if first:
                owner._on_event("llm_first_token", time.monotonic(), {})
                first = False
            self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=llm.ChoiceDelta(role="assistant", content=piece)))
        await worker
        owner._on_event("llm_done", time.monotonic(), {})
