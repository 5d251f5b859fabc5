"""Chat → Anthropic stream translation: a client that leaves mid-stream is billed for what was delivered,
not for message_start's placeholder output_tokens of 1 (DESIGN.md "The relay hot path", step 6)."""

import time

import httpx

from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for
from tests.relay.test_adapter_anthropic import run_stream

START_ONLY = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
              b'"content":[],"model":"m","usage":{"input_tokens":7,"cache_read_input_tokens":2,"output_tokens":1}}}\n\n'
              b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n')


def test_message_start_alone_gives_the_input_but_no_final_usage():
    _, translator = run_stream(START_ONLY)
    assert translator.usage is None  # the final usage (message_delta) never came
    assert (translator.prompt_usage.prompt_tokens, translator.prompt_usage.cached_tokens, translator.prompt_usage.completion_tokens) == (9, 2, 0)


def test_a_chat_stream_to_anthropic_cut_by_the_client_is_billed_for_what_was_delivered(gateway, upstream):
    credential = key_services.credential_create(actor=gateway.ctx, name="mock-anthropic", provider="anthropic",
                                                base_url=upstream.url, api_key="test-key")
    gateway.add_model("claude-chat", "echo", credential=credential)
    upstream.chunk_delay = 0.2
    try:
        body = {"model": "claude-chat", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
        contents = 0
        with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body,
                          headers={"authorization": f"Bearer {gateway.secret}"}, timeout=10) as response:
            request_id = response.headers["x-request-id"]
            for line in response.iter_lines():
                contents += line.startswith("data: ") and '"content":"' in line and '"content":""' not in line
                if contents == 3:
                    break
        event = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1])
        time.sleep(1)
        entry = upstream.ledger[-1]
        assert not entry.completed
        assert (event.status_code, event.error_type, event.endpoint) == (499, "client_disconnected", "chat")
        # Delivered <= billed <= generated, with the input exactly as message_start reported it.
        assert 3 <= event.completion_tokens <= entry.completion_tokens
        assert (event.usage_source, event.prompt_tokens) == ("estimated", entry.prompt_tokens)
    finally:
        upstream.chunk_delay = 0.0
