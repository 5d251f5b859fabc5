"""Sandbox keys (README "Sandbox keys"): every request is answered by the local demo model
(wire/adapters/mock.py) while the ledger prices it as the model named would cost (relay.record)."""

from dataclasses import replace

_COPY = "_sandboxed"  # where a model snapshot keeps its sandboxed copy (not a field: replace() leaves it behind)


def sandboxed(model):
    """The model with every deployment answered by the demo model; its prices (the deployments') stay,
    and there are no fallback models (the demo model does not fail).

    Built once per snapshot and kept on it: snapshots are immutable and a reload makes new ones, so
    the copy follows every configuration change and a sandbox request rebuilds nothing."""
    copy = model.__dict__.get(_COPY)
    if copy is None:
        deployments = tuple(replace(d, target=replace(d.target, wire="mock", api_key="", base_url="mock://local")) for d in model.deployments)
        copy = replace(model, deployments=deployments, policy=replace(model.policy, fallback_models=()))
        object.__setattr__(model, _COPY, copy)  # a frozen dataclass: a cache, not a change of its fields
    return copy
