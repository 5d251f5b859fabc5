"""wire/adapters/reasoning.py: reasoning_effort as Anthropic's thinking budget and Gemini's thinkingConfig (table tests)."""

import orjson
import pytest

from wire.adapters import get_adapter
from wire.adapters.base import Target


def sent(wire: str, upstream_model: str, **body) -> dict:
    target = Target(deployment_id=1, wire=wire, provider=wire, base_url="https://example.test", api_key="k", upstream_model=upstream_model)
    request = get_adapter(wire).build_request(endpoint="chat", body={"model": upstream_model, "messages": [{"role": "user", "content": "Hi"}], **body},
                                              target=target, stream=False)
    return orjson.loads(request.body)


@pytest.mark.parametrize("effort, budget", [("minimal", 1024), ("low", 1024), ("medium", 8192), ("high", 24576), ("none", None), ("bogus", None)])
def test_anthropic_thinking_budget_per_effort(effort, budget):
    payload = sent("anthropic", "claude-opus-4-5", reasoning_effort=effort, max_tokens=32000, temperature=0.3, top_k=5)
    assert payload.get("thinking") == ({"type": "enabled", "budget_tokens": budget} if budget else None)
    assert ("temperature" in payload) == (budget is None) and ("top_k" in payload) == (budget is None)


def test_anthropic_thinking_is_left_out_where_it_would_be_refused():
    forced = {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}
    assert "thinking" not in sent("anthropic", "claude-opus-4-5", reasoning_effort="high", max_tokens=32000, **forced)
    assert "thinking" not in sent("anthropic", "claude-sonnet-5", reasoning_effort="high", max_tokens=32000)
    assert "thinking" not in sent("anthropic", "claude-opus-4-5", reasoning_effort="high", max_tokens=1024)  # no room below max_tokens
    assert sent("anthropic", "claude-opus-4-5", reasoning_effort="high")["thinking"]["budget_tokens"] == 4095  # the default max_tokens, 4096


@pytest.mark.parametrize("model, effort, config", [
    ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}), ("gemini-2.5-pro", "high", {"thinkingBudget": 24576}),
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0}), ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high"}),
    ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium"}), ("models/gemini-3-flash", "minimal", {"thinkingLevel": "minimal"}),
    ("gemini-3-pro-preview", "low", {"thinkingLevel": "low"}),
])
def test_gemini_thinking_config_per_model_generation(model, effort, config):
    payload = sent("gemini", model, reasoning_effort=effort, temperature=0.2)
    assert payload["generationConfig"]["thinkingConfig"] == config and payload["generationConfig"]["temperature"] == 0.2


def test_no_effort_no_thinking():
    assert "thinking" not in sent("anthropic", "claude-opus-4-5")
    assert "thinkingConfig" not in sent("gemini", "gemini-2.5-flash").get("generationConfig", {})
