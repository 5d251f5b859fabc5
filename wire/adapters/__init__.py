"""The adapter registry: wire format name (wire.presets.Preset.wire) → that module's `adapter`."""

from wire.adapters import anthropic, azure, gemini, mock, openai, rerank

REGISTRY = {
    "openai": openai.adapter,
    "anthropic": anthropic.adapter,
    "gemini": gemini.adapter,
    "azure": azure.adapter,
    "mock": mock.adapter,
    "rerank": rerank.adapter,
}


def get_adapter(wire: str):
    return REGISTRY[wire]
