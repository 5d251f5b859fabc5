"""relay/leases.py, which carries the overspend bound: what processes admit from a shared counter never
exceeds its limit, idle leases strand at most a lease per process, and an outage's local grants are
added back to the shared counter before anything new is granted."""

import asyncio
import secrets

import pytest
from django.conf import settings

from relay.leases import FailoverLeaseStore, LeaseBook, LocalLeaseStore, MissingCounter, RedisLeaseStore

TTL = 60


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def redis_url():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    return settings.REDIS_URL


def counter_name() -> str:
    return f"tollgate:test-lease:{secrets.token_hex(6)}"


async def admit_all(book: LeaseBook, counter: str, limit: float, amount: float, tries: int) -> int:
    admitted = 0
    for _ in range(tries):
        admitted += await book.take(counter, limit, amount, ttl=TTL)
    return admitted


def test_one_process_admits_exactly_the_limit():
    book = LeaseBook(LocalLeaseStore())
    admitted = run(admit_all(book, "c", limit=100, amount=3, tries=100))
    assert admitted == 33  # 33 × 3 = 99; a 34th would pass 100
    assert book.remaining_estimate("c", 100) == pytest.approx(1)


def test_a_request_larger_than_the_room_is_refused_without_taking_anything():
    store = LocalLeaseStore()
    book = LeaseBook(store)
    assert run(book.take("c", 10, 8, ttl=TTL))
    assert not run(book.take("c", 10, 5, ttl=TTL))
    assert run(book.take("c", 10, 2, ttl=TTL))  # the refused request left its room to smaller ones


def test_settling_above_the_reservation_is_a_debt_the_next_lease_pays():
    book = LeaseBook(LocalLeaseStore())
    assert run(book.take("c", 100, 10, ttl=TTL))
    run(book.adjust("c", 30))  # the request cost 30 more than it reserved
    assert book.spent_estimate("c") == pytest.approx(40)
    admitted = run(admit_all(book, "c", limit=100, amount=10, tries=20))
    assert admitted == 6  # 40 spent: room for six more requests of 10, not nine


def test_a_counter_that_must_exist_and_does_not_raises_for_a_rebuild():
    with pytest.raises(MissingCounter):
        run(LeaseBook(LocalLeaseStore()).take("c", 100, 1, ttl=TTL, must_exist=True))


def test_leases_shrink_near_the_limit():
    store = LocalLeaseStore()
    grants = []
    real = store.grant

    async def recording(counter, limit, wanted, minimum, ttl, must_exist=False):
        granted, used = await real(counter, limit, wanted, minimum, ttl, must_exist)
        grants.append((wanted, limit - used + granted))  # what was asked, and the room before the grant
        return granted, used

    store.grant = recording
    run(admit_all(LeaseBook(store, fraction=1 / 20), "c", limit=1000, amount=1, tries=1000))
    assert grants[0][0] == 1000 / 20  # far from the limit: a twentieth of it
    for wanted, room in grants:
        assert wanted <= max(1, min(1000 / 20, room / 8)) + 1e-9  # never more than an eighth of what is left
    assert grants[-1][0] == 1  # the last units are leased one at a time


def test_processes_sharing_a_redis_counter_never_admit_past_the_limit(redis_url):
    import redis.asyncio as redis

    limit, amount, processes = 1000.0, 7.0, 6
    counter = counter_name()

    async def scenario():
        client = redis.Redis.from_url(redis_url)
        try:
            books = [LeaseBook(RedisLeaseStore(client), fraction=1 / 10) for _ in range(processes)]

            async def worker(book):
                admitted = 0
                for _ in range(400):
                    if await book.take(counter, limit, amount, ttl=TTL):
                        admitted += 1
                    await asyncio.sleep(0)
                return admitted

            counts = await asyncio.gather(*(worker(book) for book in books))
            shared = float(await client.get(counter))
            stranded = sum(book._leases[counter].available for book in books if counter in book._leases)
            await client.delete(counter)
            return counts, shared, stranded, books
        finally:
            await client.aclose()

    counts, shared, stranded, books = run(scenario())
    admitted = sum(counts) * amount
    assert admitted <= limit
    assert shared <= limit
    assert admitted + stranded == pytest.approx(shared)  # every unit leased is admitted or still held
    assert limit - admitted < processes * amount + amount  # at most about a request per process left unusable


def test_an_outage_grants_locally_and_adds_it_back_before_new_grants(redis_url):
    import redis.asyncio as redis

    counter = counter_name()

    class Switchable(RedisLeaseStore):
        down = False

        async def grant(self, *args, **kwargs):
            if self.down:
                raise ConnectionError("redis is down")
            return await super().grant(*args, **kwargs)

        async def add(self, *args, **kwargs):
            if self.down:
                raise ConnectionError("redis is down")
            return await super().add(*args, **kwargs)

    async def scenario():
        client = redis.Redis.from_url(redis_url)
        try:
            primary = Switchable(client)
            store = FailoverLeaseStore(primary, LocalLeaseStore(), retry_after=0)
            assert (await store.grant(counter, 100, 10, 10, TTL))[0] == 10
            primary.down = True
            assert (await store.grant(counter, 100, 25, 25, TTL))[0] == 25  # local counters while Redis fails
            primary.down = False
            granted, used = await store.grant(counter, 100, 5, 5, TTL)
            shared = float(await client.get(counter))
            await client.delete(counter)
            return granted, used, shared
        finally:
            await client.aclose()

    granted, used, shared = run(scenario())
    assert granted == 5
    assert shared == pytest.approx(10 + 25 + 5)  # the outage's 25 reached the shared counter first
    assert used == pytest.approx(shared)
