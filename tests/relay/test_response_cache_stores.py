"""The response cache's stores and its wire side (relay/response_cache.py, wire/replay.py)."""

import asyncio

import orjson

from relay.response_cache import LocalAnswerStore, RedisAnswerStore
from wire.replay import answer_from_stream, deterministic, fingerprint, stream_of


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_in_process_store_is_bounded_in_bytes_and_evicts_the_least_recently_used():
    store = LocalAnswerStore(max_bytes=250)
    for name in ("a", "b"):
        run(store.put(name, b"x" * 100, 60))
    assert run(store.get("a")) is not None  # "a" is now the most recently used
    run(store.put("c", b"y" * 100, 60))
    assert run(store.get("b")) is None and run(store.get("a")) and run(store.get("c"))
    assert store.size == 200
    run(store.put("huge", b"z" * 251, 60))  # larger than the whole store: not kept
    assert run(store.get("huge")) is None and store.size == 200


def test_the_in_process_store_expires_entries():
    store = LocalAnswerStore(max_bytes=1000)
    run(store.put("a", b"x", 0))
    assert run(store.get("a")) is None and store.size == 0


def test_redis_failing_is_a_miss_not_an_error():
    class Down:
        async def get(self, name):
            raise ConnectionError("redis is away")

    assert run(RedisAnswerStore(Down()).get("tollgate:rc:1:x")) is None


def test_the_fingerprint_ignores_key_order_stream_and_user_but_not_the_rest():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "response_format": {"type": "json_object", "a": 1}}
    same = {"user": "u", "stream": True, "stream_options": {"include_usage": True}, "temperature": 0,
            "response_format": {"a": 1, "type": "json_object"}, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert fingerprint("chat", body) == fingerprint("chat", same)
    assert fingerprint("chat", body) != fingerprint("chat", {**body, "temperature": 0.1})
    assert fingerprint("chat", body) != fingerprint("completions", body)


def test_only_temperature_zero_and_embeddings_are_repeatable():
    assert deterministic("chat", {"temperature": 0}) and deterministic("embeddings", {})
    assert not deterministic("chat", {}) and not deterministic("chat", {"temperature": 0.2}) and not deterministic("chat", {"temperature": False})


def test_a_stream_round_trips_through_the_whole_answer_and_a_cut_one_does_not():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "usage": usage, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls", "logprobs": None}]}
    streamed = stream_of("chat", answer, include_usage=True)
    assert answer_from_stream("chat", [streamed], usage) == answer
    chunks = [line + b"\n\n" for line in streamed.split(b"\n\n") if line]
    assert answer_from_stream("chat", chunks[:1], usage) is None  # no finish_reason: cut
    assert answer_from_stream("chat", [b'data: ' + orjson.dumps({"error": {"message": "x"}}) + b"\n\n"], usage) is None


MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "tool_use", "stop_sequence": None,
           "usage": {"input_tokens": 7, "output_tokens": 4, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
           "content": [{"type": "thinking", "thinking": "Let me see", "signature": "sig"}, {"type": "text", "text": "Sure."},
                       {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"city": "Paris"}}]}
RESPONSE = {"id": "resp_1", "object": "response", "status": "completed", "model": "m", "metadata": {}, "user": None,
            "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
            "output": [{"id": "rs_1", "type": "reasoning", "summary": [], "status": "completed", "content": [{"type": "reasoning_text", "text": "hm"}]},
                       {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}]},
                       {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "status": "completed"}]}


def test_messages_and_responses_streams_round_trip_and_cut_ones_do_not():
    for endpoint, answer, last in (("messages", MESSAGE, b"message_stop"), ("responses", RESPONSE, b"response.completed")):
        streamed = stream_of(endpoint, answer, include_usage=False)
        events = [part + b"\n\n" for part in streamed.split(b"\n\n") if part]
        assert last in events[-1] and b"[DONE]" not in streamed
        assert answer_from_stream(endpoint, events, {}) == answer
        assert answer_from_stream(endpoint, events[:-1], {}) is None  # cut before its end
    numbers = [orjson.loads(e.split(b"data: ", 1)[1])["sequence_number"] for e in stream_of("responses", RESPONSE, False).split(b"\n\n") if e]
    assert numbers == list(range(len(numbers)))


def test_each_protocol_leaves_out_its_own_non_semantic_fields():
    ask = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    assert fingerprint("messages", ask) == fingerprint("messages", {**ask, "stream": True, "metadata": {"user_id": "u"}})
    assert fingerprint("messages", ask) != fingerprint("messages", {**ask, "metadata": {"user_id": "u", "other": 1}})
    assert fingerprint("messages", ask) != fingerprint("messages", ask, "beta-feature")  # Anthropic's beta header
    turn = {"model": "m", "input": "hi", "temperature": 0}
    assert fingerprint("responses", turn) == fingerprint("responses", {**turn, "metadata": {"a": "b"}, "user": "u", "stream": True})
    assert fingerprint("responses", turn) != fingerprint("responses", {**turn, "instructions": "Be brief."})
    assert fingerprint("responses", turn) != fingerprint("chat", turn)
