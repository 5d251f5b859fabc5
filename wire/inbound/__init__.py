"""Inbound protocols other than OpenAI chat, each mapped to and from the canonical form (an OpenAI chat
completions request and response, which every adapter in wire.adapters maps to its provider)."""
