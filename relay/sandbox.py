"""Sandbox keys (README "Sandbox keys"): every request is answered by the local demo model
(wire/adapters/mock.py) while the ledger prices it as the model named would cost (relay.record)."""

from dataclasses import replace


def sandboxed(model):
    """The model with every deployment answered by the demo model; its prices (the deployments') stay,
    and there are no fallback models (the demo model does not fail)."""
    deployments = tuple(replace(d, target=replace(d.target, wire="mock", api_key="", base_url="mock://local")) for d in model.deployments)
    return replace(model, deployments=deployments, policy=replace(model.policy, fallback_models=()))
