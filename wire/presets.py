"""Provider presets: the stored `ProviderCredential.provider` value, its wire format and default base URL, as data.

Wire facts and sources: ../shared/PROVIDERS.md. Adding an OpenAI-compatible provider is one line here: no migration (the
provider field's choices are a callable).
"""

from dataclasses import dataclass
from decimal import Decimal


def _(label: str) -> str:
    """Marks a label for the translation catalogue (makemessages); keys translates it for display."""
    return label


# Upstream timeouts of a new credential, in seconds. The read timeout bounds the wait for the first
# byte and every idle gap between stream chunks: a minute, so a dead upstream fails over in time.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class Preset:
    slug: str
    label: str  # English; keys.models.provider_choices translates it
    wire: str  # adapter module under wire/adapters/: openai, anthropic, gemini, azure, rerank, mock
    base_url: str
    # Whether the upstream honours stream_options.include_usage (unconfirmed ones are asked anyway
    # and fall back to an offline token estimate when no usage arrives).
    stream_usage: bool = True
    # The provider's own batch API (batches.native): "openai" (Files + Batches) or "anthropic" (Message
    # Batches); "" for none. `batch_price` is its price as a fraction of the live one (both: 50%, PROVIDERS.md §7).
    native_batch: str = ""
    batch_price: Decimal = Decimal(1)


PRESETS: dict[str, Preset] = {
    p.slug: p
    for p in [
        Preset("openai", _("OpenAI"), "openai", "https://api.openai.com/v1", native_batch="openai", batch_price=Decimal("0.5")),
        Preset("deepseek", _("DeepSeek"), "openai", "https://api.deepseek.com/v1"),
        Preset("moonshot-cn", _("Moonshot / Kimi (China, CNY)"), "openai", "https://api.moonshot.cn/v1"),
        Preset("moonshot-ai", _("Moonshot / Kimi (global, USD)"), "openai", "https://api.moonshot.ai/v1"),
        Preset("zhipu", _("Zhipu GLM (China)"), "openai", "https://open.bigmodel.cn/api/paas/v4"),
        Preset("zai", _("Z.ai GLM (global)"), "openai", "https://api.z.ai/api/paas/v4"),
        Preset("qianfan", _("Baidu Qianfan v2"), "openai", "https://qianfan.baidubce.com/v2"),
        Preset("ark", _("Volcengine Ark / Doubao"), "openai", "https://ark.cn-beijing.volces.com/api/v3"),
        Preset("qiniu", _("Qiniu AI inference"), "openai", "https://api.qnaigc.com/v1"),
        Preset("dashscope", _("Alibaba DashScope (Model Studio)"), "openai", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
        Preset("siliconflow-cn", _("SiliconFlow (China, CNY)"), "openai", "https://api.siliconflow.cn/v1"),
        Preset("siliconflow-com", _("SiliconFlow (global, USD)"), "openai", "https://api.siliconflow.com/v1"),
        Preset("openrouter", _("OpenRouter"), "openai", "https://openrouter.ai/api/v1"),
        Preset("custom", _("Custom OpenAI-compatible"), "openai", ""),
        Preset("anthropic", _("Anthropic Claude"), "anthropic", "https://api.anthropic.com", native_batch="anthropic",
               batch_price=Decimal("0.5")),
        Preset("gemini", _("Google Gemini"), "gemini", "https://generativelanguage.googleapis.com/v1beta"),
        Preset("azure", _("Azure OpenAI"), "azure", ""),
        # Rerank only (wire.adapters.rerank; the slug picks the dialect there).
        Preset("cohere", _("Cohere (rerank)"), "rerank", "https://api.cohere.com"),
        Preset("jina", _("Jina AI (rerank)"), "rerank", "https://api.jina.ai/v1"),
        Preset("siliconflow", _("SiliconFlow (rerank)"), "rerank", "https://api.siliconflow.cn/v1"),
        Preset("dashscope-rerank", _("Alibaba DashScope text rerank"), "rerank", "https://dashscope.aliyuncs.com/api/v1"),
        Preset("mock", _("Demo (local mock, no internet)"), "mock", "mock://local"),
    ]
}
