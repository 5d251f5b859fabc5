"""Inbound protocols that are not chat completions, each mapped to and from the canonical chat form."""
