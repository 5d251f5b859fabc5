"""The wire: what Tollgate speaks to clients and providers, free of Django and of every app.

Adapters and their registry, provider presets, OpenAI-shaped errors, server-sent events, the offline
tokenizer, the usage record, the Redis key names, and the pure rules both sides apply: pricing arithmetic,
budget periods, which addresses server-side requests may reach, which client address to believe. The relay and the control plane both build on it;
it imports neither (import-linter holds this in `make test`).
"""
