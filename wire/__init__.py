"""The wire: what Tollgate speaks to clients and providers, free of Django and of every app.

Adapters and their registry, provider presets, OpenAI-shaped errors, server-sent events, the offline
tokenizer, the usage record and the Redis key names. The relay and the control plane both build on it;
it imports neither (import-linter holds this in `make test`).
"""
