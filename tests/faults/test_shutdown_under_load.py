"""SIGTERM to a loaded web process: every request either completed or was refused before
admission (no answer at all, no upstream call, no usage row), and every usage record was flushed.
tests/relay/test_shutdown.py covers five idle streams; this is the same under continuous load."""

import signal
import time

from tests.faults.helpers import Traffic, WebProcess, chat
from tests.gateway import wait_for
from tests.reconcile import reconcile

LANES = 24  # concurrent clients, half streaming (each stream about 0.5 s), half not


def test_sigterm_under_load_completes_or_refuses_every_request(gateway, upstream):
    upstream.chunk_delay = 0.05
    web = WebProcess("--timeout-graceful-shutdown", "10")
    traffic = Traffic([(f"lane{i}", web.url, gateway.secret, chat(stream=i % 2 == 0), 0.0) for i in range(LANES)], timeout=20)
    try:
        traffic.start()
        wait_for(lambda: len(upstream.ledger) >= 60, timeout=30)  # well under way
        in_flight = len([e for e in upstream.ledger if not e.completed])
        terminated_at = time.time()
        web.process.send_signal(signal.SIGTERM)
        time.sleep(2)  # clients keep calling: they must now be refused
        outcomes = traffic.stop()
        assert web.wait_exit(20) in (0, -signal.SIGTERM)
    finally:
        traffic.stop()
        upstream.chunk_delay = 0.0
        web.kill()

    served = [o for _, o in outcomes if o.status is not None]
    refused = [o for _, o in outcomes if o.status is None]
    for outcome in served:  # admitted: answered in full, streams up to [DONE]
        assert outcome.status == 200 and outcome.complete and outcome.code == "", outcome
    assert refused and all(o.started + o.elapsed >= terminated_at for o in refused)  # refused only after SIGTERM
    finished_late = [o for o in served if o.started < terminated_at < o.started + o.elapsed]
    assert in_flight >= 5 and len(finished_late) >= 5  # requests in flight at SIGTERM ran to their end
    assert all(e.completed for e in upstream.ledger)  # no upstream call was cut
    assert len(upstream.ledger) == len(served)  # a refused request never reached the upstream
    rows = reconcile(gateway.org, upstream, expected_requests=len(served))  # every record flushed before exit
    assert {r.status_code for r in rows} == {200}
