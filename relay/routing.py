"""Which deployment serves an attempt: smooth weighted round-robin, then the fallback chain.

Smooth WRR (as nginx does it) spreads a 70/30 split as A A B A A B A A B A rather than in random
bursts. Deployments with weight 0 are drained: they take no split traffic but stay in the chain.
Cooling deployments (relay.cooldown) are left out while any other one is available.
"""

import random
import zlib

from relay.snapshots import DeploymentSnapshot, ModelSnapshot

BACKOFF_BASE = 0.25
BACKOFF_CAP = 4.0


def backoff_delay(retry: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter in its upper half; an upstream's Retry-After wins."""
    if retry_after is not None:
        return retry_after
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2**retry)
    return ceiling * (0.5 + random.random() / 2)


class Router:
    def __init__(self, cooldowns=None):
        self._current: dict[tuple[int, int], dict[int, int]] = {}
        self.cooldowns = cooldowns

    def clear(self) -> None:
        """Forget the weighted round-robin positions."""
        self._current.clear()

    def plan(self, model: ModelSnapshot, *, sticky_id: int | None = None) -> tuple[list[DeploymentSnapshot], list[DeploymentSnapshot]]:
        """(ready, cooling): the primary choice first then the rest in fallback order, and the cooling
        deployments, which callers try only after every other option (fallback models included)."""
        available, cooling = [], []
        for deployment in model.deployments:
            (cooling if self._cooling(deployment) else available).append(deployment)
        return self._order(model, available, sticky_id), cooling

    def _order(self, model: ModelSnapshot, available: list[DeploymentSnapshot], sticky_id: int | None) -> list[DeploymentSnapshot]:
        if not available:
            return []
        weighted = [d for d in available if d.weight > 0]
        if not weighted:
            return sorted(available, key=lambda d: (d.order, d.target.deployment_id))
        if model.routing == "sticky" and sticky_id is not None:
            primary = _sticky_pick(weighted, model.id, sticky_id)
        else:
            primary = self._smooth_pick(model, weighted)
        rest = sorted((d for d in available if d is not primary), key=lambda d: (d.order, d.target.deployment_id))
        return [primary, *rest]

    def _cooling(self, deployment: DeploymentSnapshot) -> bool:
        return self.cooldowns is not None and self.cooldowns.cooling(deployment.target.deployment_id)

    def _smooth_pick(self, model: ModelSnapshot, weighted: list[DeploymentSnapshot]) -> DeploymentSnapshot:
        if len(weighted) == 1:
            return weighted[0]
        state_key = (model.id, hash(tuple((d.target.deployment_id, d.weight) for d in weighted)))
        current = self._current.setdefault(state_key, {})
        total = 0
        best, best_value = None, None
        for deployment in weighted:
            ident = deployment.target.deployment_id
            value = current.get(ident, 0) + deployment.weight
            current[ident] = value
            total += deployment.weight
            if best_value is None or value > best_value:
                best, best_value = deployment, value
        current[best.target.deployment_id] -= total
        return best


def _sticky_pick(weighted: list[DeploymentSnapshot], model_id: int, sticky_id: int) -> DeploymentSnapshot:
    """A stable hash of (model, key) onto the weight line: same key, same variant, in every process."""
    total = sum(d.weight for d in weighted)
    point = zlib.crc32(f"{model_id}:{sticky_id}".encode()) % total
    for deployment in sorted(weighted, key=lambda d: d.target.deployment_id):
        if point < deployment.weight:
            return deployment
        point -= deployment.weight
    return weighted[-1]
