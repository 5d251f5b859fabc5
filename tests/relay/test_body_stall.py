"""A slow parse never blocks others: while the relay refuses 8 MiB bodies that cost orjson ~200 ms each,
tiny requests on the same relay keep answering promptly (README "Work per request is bounded").

Before, the big bodies were parsed on the event loop and every tiny request waited for them; now a body
above relay.bodies.OFFLOAD_BYTES is parsed and checked in a worker process.
"""

import threading
import time

import httpx

from relay import bodies


def wide_body(size: int) -> bytes:
    """An object of ~600,000 members at 8 MiB: within the size limit, costly to parse, refused by the checks."""
    prefix, suffix = b'{"model":"gpt-test","messages":[{"role":"user","content":"x"}],"metadata":{', b"}}"
    count = (size - len(prefix) - len(suffix)) // 15
    return prefix + b",".join(b'"k%09d":0' % i for i in range(count)) + suffix


def test_a_costly_parse_never_runs_on_the_event_loop(gateway, relay_server, monkeypatch):
    """Four 8 MiB bodies that cost orjson ~200 ms each are parsed and refused by the worker process,
    never in the relay's own process (whose event loop serves everyone), while tiny requests go on being
    answered. Latency itself is the benchmark's to measure (benchmarks/request_work.py): the figures
    printed here are for the reader, not asserted, since this machine's load varies."""
    parsed_here = []
    inline = bodies.parse_checked

    def spy(raw, endpoint):
        parsed_here.append(len(raw))
        return inline(raw, endpoint)

    monkeypatch.setattr(bodies, "parse_checked", spy)  # this process only: the worker has its own copy
    body = wide_body(relay_server.relay.runtime.max_body - 64)
    headers = {"Authorization": f"Bearer {gateway.secret}", "Content-Type": "application/json"}
    outcomes, done = [], threading.Event()

    def hammer():
        with httpx.Client(timeout=30) as big:
            for _ in range(4):
                outcomes.append(big.post(gateway.base_url + "/chat/completions", content=body, headers=headers))
        done.set()

    with httpx.Client(timeout=10, headers=headers) as small:
        small.get(gateway.base_url + "/models")  # warm: connection, key and model snapshots
        worker = threading.Thread(target=hammer)
        worker.start()
        latencies = []
        while not done.is_set():
            started = time.perf_counter()
            assert small.get(gateway.base_url + "/models").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)
        worker.join()
    assert [r.status_code for r in outcomes] == [400] * 4
    assert {r.json()["error"]["code"] for r in outcomes} == {"request_too_complex"}  # checked, by the worker
    assert not [size for size in parsed_here if size > bodies.OFFLOAD_BYTES], parsed_here
    assert len(latencies) >= 4  # tiny requests were answered all along
    latencies.sort()
    print(f"tiny requests during 4 big parses: n={len(latencies)} median={latencies[len(latencies) // 2] * 1000:.1f} ms "
          f"max={latencies[-1] * 1000:.1f} ms")


def test_a_large_refused_body_still_names_its_model_in_the_ledger(gateway, relay_server):
    from billing.models import UsageEvent
    from tests.gateway import drain_usage, wait_for

    body = wide_body(bodies.OFFLOAD_BYTES * 16)  # 70,000 members: past the checks
    response = httpx.post(gateway.base_url + "/chat/completions", content=body, timeout=30,
                          headers={"Authorization": f"Bearer {gateway.secret}", "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "request_too_complex"
    event = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org).first())[1])
    assert (event.model_name, event.status_code, event.error_type) == ("gpt-test", 400, "request_too_complex")


def test_a_large_valid_body_is_served(gateway):
    text = "word " * (bodies.OFFLOAD_BYTES // 4)
    answer = gateway.client().chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}], max_tokens=5)
    assert answer.choices[0].message.content
