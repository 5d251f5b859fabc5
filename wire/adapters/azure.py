"""Azure OpenAI: OpenAI's bodies and streams, Azure's URLs and `api-key` header. Wire facts: PROVIDERS.md §4.

Two URL shapes (learn.microsoft.com …/api-version-lifecycle):
  dated API  {base}/openai/deployments/{deployment}/chat/completions?api-version=YYYY-MM-DD
  v1 API     {base}/openai/v1/chat/completions, deployment name as `model`, no api-version
"""

from urllib.parse import quote

from wire.adapters.base import Target
from wire.adapters.openai import PATHS, OpenAIAdapter

DEFAULT_API_VERSION = "2024-10-21"  # latest GA seen; stream_options.include_usage is supported from 2024-09-01-preview


class AzureAdapter(OpenAIAdapter):
    name = "azure"

    def url(self, target: Target, endpoint: str) -> str:
        base = target.base_url.rstrip("/")
        if base.endswith("/openai/v1"):
            return base + PATHS[endpoint]
        base = base.removesuffix("/openai")  # accept the resource URL with or without /openai
        deployment = quote(target.upstream_model, safe="")
        return f"{base}/openai/deployments/{deployment}{PATHS[endpoint]}?api-version={target.api_version or DEFAULT_API_VERSION}"

    def auth_headers(self, target: Target) -> dict[str, str]:
        return {"api-key": target.api_key}


adapter = AzureAdapter()
