"""The adapter registry: wire format name (keys.presets.Preset.wire) → adapter module's `adapter`."""

from importlib import import_module

WIRES = ("openai", "anthropic", "gemini", "azure", "mock")

_REGISTRY: dict = {}


def get_adapter(wire: str):
    adapter = _REGISTRY.get(wire)
    if adapter is None:
        if wire not in WIRES:
            raise KeyError(wire)
        adapter = _REGISTRY[wire] = import_module(f"relay.providers.{wire}").adapter
    return adapter
