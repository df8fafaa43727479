"""The transformers backend streams a reply from a tiny random model built here (needs the `llm` extra).

CI installs the default, torch-free stack, where this module is skipped: torch from PyPI is a
multi-GB CUDA build. Run it with `.venv/bin/pip install -e .[llm] && ./run_tests.sh tests/unit/test_hf_llm.py`.
"""

import pytest

pytestmark = pytest.mark.unit
torch = pytest.importorskip("torch", reason="the optional `llm` extra (torch + transformers) is not installed")
transformers = pytest.importorskip("transformers")


def _tiny_model_and_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "[EOS]", "you", "are", "a", "voice", "assistant", "user", "assistant:", "user:", "hello",
             "weather", "sunny", "today", "concise", "answer", "in", "one", "or", "two", "short", "sentences."]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", eos_token="[EOS]", pad_token="[EOS]")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=64, n_embd=16, n_layer=1, n_head=2))
    return model.eval(), tok


async def test_reply_streams_as_chunks_with_stage_events():
    from livekit.agents import llm

    from system.agent.hf_llm import HFOptions, TransformersLLM

    model, tok = _tiny_model_and_tokenizer()
    events: list[str] = []
    lm = TransformersLLM(model=model, tokenizer=tok, options=HFOptions(max_new_tokens=8),
                         on_event=lambda name, t, info: events.append(name))
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content="hello weather today")
    chunks = [c async for c in lm.chat(chat_ctx=ctx)]
    text = "".join(c.delta.content for c in chunks if c.delta and c.delta.content)
    assert chunks and text.strip(), "the model produced no streamed text"
    assert events[0] == "llm_request" and "llm_first_token" in events and events[-1] == "llm_done"
