"""OpenAI's `reasoning_effort` (chat; Responses' `reasoning.effort` arrives as it) in the providers that take a
thinking budget or level instead: Anthropic's `thinking` and Gemini's `generationConfig.thinkingConfig`.

Budgets: Google maps OpenAI's low/medium/high to 1K/8K/24K thinking tokens on its own OpenAI-compatible
endpoint (ai.google.dev/gemini-api/docs/openai); Tollgate uses the same figures for Anthropic, inside the
bands wire.inbound.messages reads back (below 4096 low, below 16384 medium), so an effort survives a round trip.
"""

# Anthropic's smallest thinking budget (platform.claude.com extended-thinking docs; not in PROVIDERS.md).
ANTHROPIC_MIN_BUDGET = 1024
BUDGETS = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
# Models that refuse manual extended thinking with a 400 (PROVIDERS.md §2, "Newer-model breakages"): the effort
# is dropped for them. Whether their adaptive thinking takes an effort instead is UNCONFIRMED.
NO_MANUAL_THINKING = ("claude-sonnet-5",)
# Gemini 3 and later take thinkingLevel (Flash: minimal, low, medium, high; Pro: low, high); 2.5 takes
# thinkingBudget (0 turns it off on Flash and Flash-Lite; Pro cannot turn it off: UNCONFIRMED whether 0
# is refused there or ignored). Sending both is a 400.
GEMINI_BUDGET_PREFIXES = ("gemini-2.", "gemini-1.")
GEMINI_PRO_LEVELS = {"minimal": "low", "none": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high"}
GEMINI_FLASH_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}


def anthropic_thinking(body: dict, payload: dict, upstream_model: str) -> None:
    """Sets `thinking` on an Anthropic payload for the chat body's reasoning_effort, when it can be honoured:
    the budget must be at least 1024 and below max_tokens (shrunk to fit; dropped when it cannot), and
    thinking refuses a forced tool choice and any temperature or top_k (which are dropped with it on)."""
    budget = BUDGETS.get(body.get("reasoning_effort"))
    if budget is None or upstream_model.startswith(NO_MANUAL_THINKING):
        return
    if (payload.get("tool_choice") or {}).get("type") in ("any", "tool"):
        return
    budget = min(budget, int(payload.get("max_tokens") or 0) - 1)
    if budget < ANTHROPIC_MIN_BUDGET:
        return
    payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
    payload.pop("temperature", None)
    payload.pop("top_k", None)
    if payload.get("top_p") is not None and payload["top_p"] < 0.95:  # thinking allows 0.95-1 only (UNCONFIRMED beyond third-party reports)
        payload.pop("top_p")


def gemini_thinking(body: dict, payload: dict, upstream_model: str) -> None:
    """Sets generationConfig.thinkingConfig for the chat body's reasoning_effort."""
    effort = body.get("reasoning_effort")
    if not isinstance(effort, str):
        return
    model = upstream_model.removeprefix("models/")
    if model.startswith(GEMINI_BUDGET_PREFIXES):
        budget = 0 if effort == "none" else BUDGETS.get(effort)
        config = {"thinkingBudget": budget} if budget is not None else None
    else:
        level = (GEMINI_FLASH_LEVELS if "flash" in model else GEMINI_PRO_LEVELS).get(effort)
        config = {"thinkingLevel": level} if level is not None else None
    if config is not None:
        payload.setdefault("generationConfig", {})["thinkingConfig"] = config
