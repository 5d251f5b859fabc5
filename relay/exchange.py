"""One /v1 request as it passes the pipeline's stages (relay.pipeline): made once, after the key is
known, and handed from stage to stage, each filling in what it decided. It is the request's only
allocation of the flow's own (slots: no per-request dict)."""

from dataclasses import dataclass


class ClientGone(Exception):
    """The client disconnected; nothing more can be written."""


@dataclass(slots=True)
class Exchange:
    # authenticate
    conn: object  # relay.app.Connection
    endpoint: str
    key: object  # the key's snapshot (relay.snapshots)
    # parse
    body: dict | None = None
    # resolve: the model that answers (a sandbox's demo, a budget's downgrade) and the response cache's plan
    model: object = None
    lookup: object = None  # relay.response_cache.Lookup, or None: not cached
    stream: bool = False
    # admit: what was reserved, which settle gives back or charges (relay.pipeline._admit / _settle)
    record: object = None  # relay.record.Record, once admission starts (or the response cache answered)
    ceiling: int | None = None  # the most output the request may be delivered and billed
    reserved_tokens: int = 0
    tpm_counter: object = None
    limit_headers: list | tuple = ()
    reserved_micros: int = 0
    held: tuple = ()  # the budgets holding reserved_micros
    credit: object = None  # the credit lease holding it
    # forward: when trying stops, the failure to report if no deployment answered, and the context
    # window that proved too small (only a larger one is tried next)
    deadline: float = 0.0
    last_error: Exception | None = None
    context_limit: int | None = None
