"""The HTTP layer under respx: retries, auth, rate limits, paginators. No real sleeps."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from crm_tui.sources.errors import AuthError, PaginationError, RateLimited, RemoteError
from crm_tui.sources.followupboss import peek_cursor
from crm_tui.sources.http import (
    HeaderAuth,
    HttpClient,
    OAuthClientCredentials,
    RateBudget,
    RetryPolicy,
    StreamStats,
    _Retryable,
    _with_path,
    current_stats,
    parse_retry_after,
)
from crm_tui.sources.kit import RateHeaders
from crm_tui.sources.pagination import (
    ArraySplitter,
    CursorInBody,
    LinkHeader,
    OffsetLimit,
    PageNumber,
    SinglePage,
    Stream,
    read_pages,
    tail_cursor,
)

BASE = "https://crm.example"
pytestmark = pytest.mark.usefixtures("no_retry_sleep")


def client(auth=None, **kwargs) -> HttpClient:
    kwargs.setdefault("retry", RetryPolicy(attempts=4))
    return HttpClient("Test CRM", BASE, auth or HeaderAuth.token("k"), **kwargs)


async def collect(pages) -> list:
    return [r for page in [p async for p in pages] for r in page.records]


def single() -> Stream:
    return Stream("api/people", SinglePage(), ("people",))


def fub(read_ahead: bool = True) -> Stream:
    """Follow Up Boss's people: `_metadata.next` cursors, read ahead unless told not to."""
    cursor = CursorInBody(
        "_metadata.next",
        "next",
        total_at=("_metadata.total",),
        peek=peek_cursor if read_ahead else None,
    )
    return Stream("people", cursor, ("people",))


def offsets() -> Stream:
    """The integration guide's `$top`/`$skip` pages."""
    pages = OffsetLimit("$skip", "$top", total_at=("@odata.count", "total", "count"))
    return Stream("contacts", pages, ("value",))


def pages_of(stream: Stream, **kwargs):
    return read_pages(client(), stream, "contacts", **kwargs)


@respx.mock
async def test_bare_array_in_one_request():
    respx.get(f"{BASE}/api/people").respond(json=[{"id": 1}, {"id": 2}])
    assert await collect(pages_of(single())) == [
        {"id": 1},
        {"id": 2},
    ]


@respx.mock
async def test_people_envelope_is_accepted():
    respx.get(f"{BASE}/api/people").respond(json={"people": [{"id": 1}]})
    assert await collect(pages_of(single())) == [{"id": 1}]


@respx.mock
async def test_cursor_pagination_follows_next_to_the_end():
    route = respx.get(f"{BASE}/people")
    route.side_effect = [
        httpx.Response(200, json={"_metadata": {"next": "c1", "total": 3}, "people": [{"id": 3}]}),
        httpx.Response(200, json={"_metadata": {"next": "c2", "total": 3}, "people": [{"id": 2}]}),
        httpx.Response(200, json={"_metadata": {"next": None, "total": 3}, "people": [{"id": 1}]}),
    ]
    records = await collect(pages_of(fub()))
    assert [r["id"] for r in records] == [3, 2, 1]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"limit": "100"},
        {"limit": "100", "next": "c1"},
        {"limit": "100", "next": "c2"},
    ]


@respx.mock
async def test_a_repeated_cursor_stops_the_stream():
    respx.get(f"{BASE}/people").side_effect = [
        httpx.Response(200, json={"_metadata": {"next": "same"}, "people": [{"id": 1}]}),
        httpx.Response(200, json={"_metadata": {"next": "same"}, "people": [{"id": 2}]}),
    ]
    with pytest.raises(PaginationError, match="repeated"):
        await collect(pages_of(fub()))


@respx.mock
async def test_the_page_cap_stops_an_endless_server():
    counter = iter(range(10_000))

    def page(request: httpx.Request) -> httpx.Response:
        n = next(counter)
        return httpx.Response(200, json={"_metadata": {"next": f"c{n}"}, "people": [{"id": n}]})

    respx.get(f"{BASE}/people").mock(side_effect=page)
    with pytest.raises(PaginationError, match="more than 5 pages"):
        await collect(pages_of(fub(), max_pages=5))


@respx.mock
async def test_a_server_that_sends_one_page_again_and_again_is_stopped():
    """Offsets it ignores, and no total: the same records would come back 20,000 times."""
    route = respx.get(f"{BASE}/contacts").respond(json=[{"id": i} for i in range(100)])
    with pytest.raises(PaginationError, match="same page twice"):
        await collect(pages_of(offsets()))
    assert route.call_count == 2


@respx.mock
async def test_a_server_that_ignores_offsets_but_claims_a_huge_total_is_stopped_early():
    """Pages fetched together, as the total allows, are checked the same way."""
    route = respx.get(f"{BASE}/contacts").respond(
        json={"value": [{"id": i} for i in range(100)], "@odata.count": 5_000}
    )
    with pytest.raises(PaginationError, match="same page twice"):
        await collect(pages_of(offsets()))
    assert route.call_count <= 6  # the first page, and the few sent together after it


@pytest.mark.parametrize(
    ("body", "cursor"),
    [
        (b'{"_metadata":{"total":3,"next":"c1"},"people":[]}', "c1"),
        (b' \n{ "_metadata" : { "next" : "c 2" } , "people": [{"id": 1}]}', "c 2"),
        (b'{"_metadata":{"next":null},"people":[]}', None),
        (b'{"_metadata":{"next":7},"people":[]}', None),
        (b'{"_metadata":{"next":""},"people":[]}', None),
        (b'{"people":[],"_metadata":{"next":"late"}}', None),  # not first: no guess
        (b'{"_metadata":{"next":"c1","nested":{"x":1}},"people":[]}', None),  # not flat
        (b'{"_metadata":{"next":"c}1"},"people":[]}', None),  # a brace inside a string
        (b'[{"_metadata":{"next":"c1"}}]', None),
        (b"", None),
    ],
)
def test_a_cursor_is_read_off_the_head_of_a_body_only_when_that_is_safe(body, cursor):
    assert peek_cursor(body) == cursor


def people_page(ids: list[int], cursor: str | None) -> httpx.Response:
    return httpx.Response(
        200, json={"_metadata": {"next": cursor}, "people": [{"id": i} for i in ids]}
    )


@pytest.mark.parametrize(("read_ahead", "requested"), [(True, 2), (False, 1)])
@respx.mock
async def test_the_next_page_is_requested_before_this_one_is_handed_over(read_ahead, requested):
    route = respx.get(f"{BASE}/people")
    route.side_effect = [people_page([2], "c1"), people_page([1], None)]
    pages = pages_of(fub(read_ahead))
    first = await anext(pages)
    assert [r["id"] for r in first.records] == [2]
    assert route.call_count == requested
    assert [r["id"] for p in [p async for p in pages] for r in p.records] == [1]
    assert route.call_count == 2


@respx.mock
async def test_a_wrong_guess_is_dropped_and_the_decoded_cursor_followed():
    # Two `_metadata` keys: the head says "guess", the decoded page (last key wins) "real".
    respx.get(f"{BASE}/people", params={"next": "guess"}).respond(json={"people": [{"id": 66}]})
    real = respx.get(f"{BASE}/people", params={"next": "real"}).respond(
        json={"_metadata": {"next": None}, "people": [{"id": 1}]}
    )
    respx.get(f"{BASE}/people").respond(
        200,
        content=b'{"_metadata":{"next":"guess"},"_metadata":{"next":"real"},"people":[{"id":2}]}',
        headers={"content-type": "application/json"},
    )
    records = await collect(pages_of(fub()))
    assert [r["id"] for r in records] == [2, 1]
    assert real.call_count == 1


@respx.mock
async def test_a_malformed_page_is_retried_without_a_second_read_ahead():
    last = respx.get(f"{BASE}/people", params={"next": "c1"}).mock(
        return_value=people_page([1], None)
    )
    respx.get(f"{BASE}/people").side_effect = [
        # the head is whole, the records are cut off: the guess stands, the page is retried
        httpx.Response(200, content=b'{"_metadata":{"next":"c1"},"people":[{"id":2},'),
        people_page([2], "c1"),
    ]
    records = await collect(pages_of(fub()))
    assert [r["id"] for r in records] == [2, 1]
    assert last.call_count == 1


@respx.mock
async def test_closing_a_stream_early_cancels_the_request_read_ahead():
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return people_page([], None)

    respx.get(f"{BASE}/people", params={"next": "c1"}).mock(side_effect=hang)
    respx.get(f"{BASE}/people").mock(return_value=people_page([2], "c1"))
    pages = pages_of(fub())
    await anext(pages)
    await asyncio.wait_for(entered.wait(), 5)
    await pages.aclose()
    assert cancelled.is_set()


@respx.mock
async def test_offset_pagination_fetches_concurrently_and_yields_in_order():
    def page(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["$skip"])
        top = int(request.url.params["$top"])
        return httpx.Response(
            200,
            json={
                "value": [{"id": i} for i in range(skip, min(skip + top, 250))],
                "@odata.count": 250,
            },
        )

    route = respx.get(f"{BASE}/contacts").mock(side_effect=page)
    pages = [p async for p in pages_of(offsets())]
    assert [r["id"] for p in pages for r in p.records] == list(range(250))
    assert [p.total for p in pages] == [250, 250, 250]  # "@odata.count": a key with a dot
    assert sorted(int(c.request.url.params["$skip"]) for c in route.calls) == [0, 100, 200]


@respx.mock
async def test_offset_pagination_without_total_stops_on_a_short_page():
    respx.get(f"{BASE}/contacts").side_effect = [
        httpx.Response(200, json=[{"id": i} for i in range(100)]),
        httpx.Response(200, json=[{"id": 100}]),
    ]
    assert len(await collect(pages_of(offsets()))) == 101


@respx.mock
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
async def test_transient_statuses_are_retried(status):
    route = respx.get(f"{BASE}/x")
    route.side_effect = [
        httpx.Response(status),
        httpx.Response(status),
        httpx.Response(200, json=[1]),
    ]
    stats = StreamStats()
    token = current_stats.set(stats)
    try:
        assert await client().get_json("x") == [1]
    finally:
        current_stats.reset(token)
    assert route.call_count == 3
    assert stats.retries == 2


@respx.mock
async def test_5xx_gives_up_at_the_attempt_cap_with_the_guide_text():
    route = respx.get(f"{BASE}/x").respond(503)
    with pytest.raises(RemoteError) as info:
        await client().get_json("x", what="contacts")
    assert route.call_count == 4
    assert str(info.value) == "the server answered HTTP 503"


@respx.mock
@pytest.mark.parametrize("status", [400, 403, 404, 405])
async def test_client_errors_fail_at_once(status):
    route = respx.get(f"{BASE}/x").respond(status, text="nope")
    with pytest.raises(RemoteError, match=f"HTTP {status}"):
        await client().get_json("x")
    assert route.call_count == 1


@respx.mock
async def test_timeouts_are_retried_then_reported_in_the_guides_words():
    route = respx.get(f"{BASE}/x").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(RemoteError) as info:
        await client(read_timeout=15).get_json("x", what="contacts")
    assert route.call_count == 4
    assert str(info.value) == "the server did not answer within 15 s"


@respx.mock
async def test_a_hanging_server_hits_the_overall_deadline():
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=[])

    respx.get(f"{BASE}/x").mock(side_effect=hang)
    with pytest.raises(RemoteError, match=r"^the server did not answer within 0\.05 s$"):
        await client(deadline=0.05, retry=RetryPolicy(attempts=2)).get_json("x")


@respx.mock
async def test_connection_errors_are_retried():
    route = respx.get(f"{BASE}/x")
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("reset"),
        httpx.Response(200, json={"ok": True}),
    ]
    assert await client().get_json("x") == {"ok": True}


@respx.mock
async def test_malformed_json_is_retried_then_fails_clearly():
    route = respx.get(f"{BASE}/x")
    route.side_effect = [httpx.Response(200, text='[{"id": 1,'), httpx.Response(200, json=[1])]
    assert await client().get_json("x") == [1]
    respx.get(f"{BASE}/y").respond(200, text="<html>")
    with pytest.raises(RemoteError, match=r"^the server sent malformed JSON$"):
        await client().get_json("y")


def test_retry_after_in_both_forms():
    assert parse_retry_after("7") == 7.0
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after("garbage") is None
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0.0
    )


@respx.mock
async def test_retry_after_sets_the_backoff():
    now = datetime.now(UTC)
    respx.get(f"{BASE}/seconds").respond(429, headers={"Retry-After": "3"})
    respx.get(f"{BASE}/date").respond(
        429, headers={"Retry-After": format_datetime(now + timedelta(seconds=20), usegmt=True)}
    )
    c = client()
    for path, low, high in (("seconds", 3, 3), ("date", 15, 20)):
        with pytest.raises(_Retryable) as info:
            await c._attempt(path, None)
        wait = c._backoff(info.value)
        assert low <= wait <= high, (path, wait)


@respx.mock
async def test_a_retry_after_past_the_cap_means_rate_limited():
    route = respx.get(f"{BASE}/x").respond(429, headers={"Retry-After": "3600"})
    c = client(retry=RetryPolicy(attempts=4, max_retry_after=60))
    with pytest.raises(RateLimited) as info:
        await c.get_json("x")
    assert route.call_count == 1
    assert info.value.retry_at == c.rate_limited_until
    assert "retry after 3600 seconds" in str(info.value)


@respx.mock
async def test_bad_credentials_are_not_retried_and_use_the_guide_text():
    route = respx.get(f"{BASE}/x").respond(401, text="Bad Credentials")
    with pytest.raises(AuthError) as info:
        await client().get_json("x")
    assert route.call_count == 1
    assert str(info.value) == "the API key was refused: check the credentials\nBad Credentials"


def oauth(**kwargs) -> OAuthClientCredentials:
    return OAuthClientCredentials(
        f"{BASE}/auth/oauth/token", "id", "secret-canary", display_name="TopProducer", **kwargs
    )


@respx.mock
async def test_one_token_request_for_many_concurrent_pages():
    token = respx.post(f"{BASE}/auth/oauth/token").respond(
        json={"access_token": "t1", "expires_in": 3600}
    )
    data = respx.get(f"{BASE}/x").respond(json=[1])
    c = client(auth=oauth())
    await asyncio.gather(*(c.get_json("x") for _ in range(20)))
    assert token.call_count == 1
    assert data.call_count == 20
    assert all(call.request.headers["authorization"] == "Bearer t1" for call in data.calls)


@respx.mock
async def test_401_refreshes_once_and_resends_once():
    respx.post(f"{BASE}/auth/oauth/token").side_effect = [
        httpx.Response(200, json={"access_token": "old", "expires_in": 3600}),
        httpx.Response(200, json={"access_token": "new", "expires_in": 3600}),
    ]

    def data(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer new":
            return httpx.Response(200, json=[1])
        return httpx.Response(401)

    route = respx.get(f"{BASE}/x").mock(side_effect=data)
    assert await client(auth=oauth()).get_json("x") == [1]
    assert route.call_count == 2


@respx.mock
async def test_a_streamed_array_refreshes_its_token_on_a_401_and_counts_its_requests():
    respx.post(f"{BASE}/auth/oauth/token").side_effect = [
        httpx.Response(200, json={"access_token": "old", "expires_in": 3600}),
        httpx.Response(200, json={"access_token": "new", "expires_in": 3600}),
    ]

    def data(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer new":
            return httpx.Response(200, content=b'[{"id": 1}, {"id": 2}]')
        return httpx.Response(401, text="expired")

    route = respx.get(f"{BASE}/people").mock(side_effect=data)
    stats = StreamStats()
    token = current_stats.set(stats)
    try:
        batches = [b async for b in client(auth=oauth()).array_pages("people", None, ())]
    finally:
        current_stats.reset(token)
    assert [r["id"] for batch in batches for r in batch] == [1, 2]
    assert route.call_count == 2
    assert (stats.requests, stats.retries) == (2, 1)


class BreaksOff(httpx.AsyncByteStream):
    """A body that stops with a network error after its first bytes."""

    async def __aiter__(self):
        yield b'{"error": "busy'
        raise httpx.ReadError("connection reset")


@respx.mock
async def test_a_streamed_failure_whose_body_breaks_off_is_retried_then_a_source_error():
    route = respx.get(f"{BASE}/people").mock(
        side_effect=lambda request: httpx.Response(503, stream=BreaksOff())
    )
    with pytest.raises(RemoteError) as info:
        [b async for b in client().array_pages("people", None, ())]
    assert route.call_count == 4  # every attempt, as for any 503
    assert "HTTP 503" in str(info.value)


@respx.mock
async def test_a_401_that_survives_the_refresh_is_an_auth_error():
    token = respx.post(f"{BASE}/auth/oauth/token").respond(
        json={"access_token": "t", "expires_in": 3600}
    )
    route = respx.get(f"{BASE}/x").respond(401)
    with pytest.raises(AuthError):
        await client(auth=oauth()).get_json("x")
    assert route.call_count == 2
    assert token.call_count == 2


@respx.mock
async def test_token_expiry_mid_stream_is_refreshed_early():
    token = respx.post(f"{BASE}/auth/oauth/token").respond(
        json={"access_token": "t", "expires_in": 0.2}
    )
    respx.get(f"{BASE}/x").respond(json=[1])
    c = client(auth=oauth())
    await c.get_json("x")
    await asyncio.sleep(0.25)  # the token's whole life: a real wait, it is what is tested
    await c.get_json("x")
    assert token.call_count == 2


@respx.mock
async def test_wrong_client_secret_uses_the_guide_text_and_hides_the_secret():
    respx.post(f"{BASE}/auth/oauth/token").respond(401, json={"error": "invalid_client"})
    with pytest.raises(AuthError) as info:
        await client(auth=oauth()).get_json("x")
    assert str(info.value) == (
        "the client id or secret was refused: check the credentials\ninvalid_client"
    )
    assert "secret-canary" not in repr(info.value)


@respx.mock
async def test_cancellation_is_never_retried():
    calls = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        return httpx.Response(200, json=[])

    respx.get(f"{BASE}/x").mock(side_effect=slow)
    task = asyncio.create_task(client().get_json("x"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


def test_rate_budget_slows_down_before_the_server_says_429():
    budget = RateBudget()
    budget.observe(
        httpx.Headers(
            {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "150", "X-RateLimit-Window": "10"}
        )
    )
    assert budget.delay(budget._observed_at) == 0
    budget.observe(
        httpx.Headers(
            {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Window": "10"}
        )
    )
    assert budget.delay(budget._observed_at) > 0
    own = RateBudget(limit=2, window=10)
    own._sent.extend([100.0, 101.0])
    assert own.delay(105.0) == pytest.approx(5.0)
    assert own.delay(111.0) == 0


EPOCH_RESET = RateHeaders(
    window=None, window_seconds=60.0, reset="x-ratelimit-reset", reset_is_epoch=True
)
SECONDS_RESET = RateHeaders(window=None, window_seconds=2.0, reset="x-ratelimit-reset")


@respx.mock
@pytest.mark.parametrize(
    ("names", "reset", "low", "high"),
    [
        (EPOCH_RESET, lambda: str(int(time.time()) + 40), 38, 40),  # Lofty: a UTC epoch
        (EPOCH_RESET, lambda: str(int(time.time() * 1000) + 40_000), 38, 40),  # in ms
        (SECONDS_RESET, lambda: "2", 2, 2),  # Pipedrive: seconds from now
    ],
)
async def test_a_429_without_retry_after_waits_for_the_window_the_server_names(
    names, reset, low, high
):
    respx.get(f"{BASE}/x").respond(
        429, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset()}
    )
    c = client(budget=RateBudget(headers=names))
    with pytest.raises(_Retryable) as info:
        await c._attempt("x", None)
    assert low <= c._backoff(info.value) <= high


@respx.mock
async def test_a_429_with_nothing_left_and_no_reset_waits_a_whole_window():
    names = RateHeaders(limit="x-max", remaining="x-left", window="x-ms", window_unit=0.001)
    respx.get(f"{BASE}/x").respond(429, headers={"x-max": "100", "x-left": "0", "x-ms": "10000"})
    c = client(budget=RateBudget(headers=names))
    with pytest.raises(_Retryable) as info:
        await c._attempt("x", None)
    assert c._backoff(info.value) == pytest.approx(10.0)


@respx.mock
async def test_a_reset_past_the_cap_means_rate_limited_until_then():
    route = respx.get(f"{BASE}/x").respond(
        429, headers={"x-ratelimit-reset": str(int(time.time()) + 3600)}
    )
    c = client(budget=RateBudget(headers=EPOCH_RESET))
    with pytest.raises(RateLimited) as info:
        await c.get_json("x")
    assert route.call_count == 1
    retry_at = datetime.strptime(info.value.retry_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 3500 < (retry_at - datetime.now(UTC)).total_seconds() <= 3600


@respx.mock
@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-reset": "nan"},  # asyncio.sleep(nan) never wakes
        {"x-ratelimit-reset": "inf"},
        {"x-ratelimit-reset": "0"},  # already past: the usual backoff, not a hot loop
        {"x-ratelimit-reset": str(int(time.time()) - 30)},
    ],
)
async def test_a_garbled_or_past_reset_falls_back_to_the_usual_backoff(headers):
    respx.get(f"{BASE}/x").respond(429, headers=headers)
    names = RateHeaders(
        reset="x-ratelimit-reset", reset_is_epoch=headers["x-ratelimit-reset"] != "0"
    )
    c = client(budget=RateBudget(headers=names))
    with pytest.raises(_Retryable) as info:
        await c._attempt("x", None)
    assert c._backoff(info.value) is True  # stamina's exponential backoff


@respx.mock
async def test_an_epoch_reset_counts_from_the_servers_clock_not_ours():
    server_now = datetime.now(UTC) - timedelta(hours=1)  # its clock an hour behind
    respx.get(f"{BASE}/x").respond(
        429,
        headers={
            "date": format_datetime(server_now, usegmt=True),
            "x-ratelimit-reset": str(int(server_now.timestamp()) + 30),
        },
    )
    c = client(budget=RateBudget(headers=EPOCH_RESET))
    with pytest.raises(_Retryable) as info:
        await c._attempt("x", None)
    assert 29 <= c._backoff(info.value) <= 31


@respx.mock
@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "9" * 400},
        {
            "x-hubspot-ratelimit-interval-milliseconds": "1e300",
            "x-hubspot-ratelimit-remaining": "0",
        },
    ],
)
async def test_an_absurd_wait_is_rate_limited_for_a_week_at_most(headers):
    names = RateHeaders(
        remaining="x-hubspot-ratelimit-remaining",
        window="x-hubspot-ratelimit-interval-milliseconds",
        window_unit=0.001,
    )
    respx.get(f"{BASE}/x").respond(429, headers=headers)
    with pytest.raises(RateLimited) as info:
        await client(budget=RateBudget(headers=names)).get_json("x")
    assert info.value.retry_at is not None
    retry_at = datetime.strptime(info.value.retry_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert retry_at - datetime.now(UTC) <= timedelta(days=7)


def test_a_nan_window_is_ignored():
    budget = RateBudget(headers=RateHeaders())
    budget.observe(httpx.Headers({"x-ratelimit-window": "nan", "x-ratelimit-limit": "5"}))
    assert budget.window == 10.0


@respx.mock
async def test_a_spent_daily_budget_stops_at_once_instead_of_retrying():
    names = RateHeaders(daily_remaining="x-daily-left")
    spent = respx.get(f"{BASE}/spent").respond(429, headers={"x-daily-left": "0"})
    burst = respx.get(f"{BASE}/burst").mock(
        side_effect=[
            httpx.Response(429, headers={"x-daily-left": "900"}),
            httpx.Response(200, json=[]),
        ]
    )
    c = client(budget=RateBudget(headers=names))
    with pytest.raises(RateLimited) as info:
        await c.get_json("spent")
    assert spent.call_count == 1
    assert "daily request limit" in str(info.value)
    assert info.value.retry_at is None
    assert await c.get_json("burst") == []
    assert burst.call_count == 2


def test_a_budget_told_when_the_window_restarts_waits_until_then_and_no_longer():
    budget = RateBudget(headers=SECONDS_RESET)
    budget.observe(httpx.Headers({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "1.5"}))
    now = time.monotonic()
    assert 1.4 < budget.delay(now) <= 1.5
    assert budget.delay(now + 2) == 0
    budget.observe(httpx.Headers({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "999"}))
    assert budget.delay(time.monotonic()) <= 2.0  # a reset beyond the window: one window
    budget.observe(httpx.Headers({"x-ratelimit-remaining": "50", "x-ratelimit-reset": "1.5"}))
    assert budget.delay(time.monotonic()) == 0


def test_garbled_rate_headers_are_ignored():
    budget = RateBudget()
    budget.observe(httpx.Headers({"X-RateLimit-Limit": "lots"}))
    assert budget.delay(0.0) == 0


# -- the other paginators ---------------------------------------------------------------------


@respx.mock
async def test_an_after_token_in_the_body_pages_to_the_end():
    """HubSpot's shape: `paging.next.after`, absent on the last page."""
    route = respx.get(f"{BASE}/crm/v3/objects/contacts")
    route.side_effect = [
        httpx.Response(200, json={"results": [{"id": "1"}], "paging": {"next": {"after": "a"}}}),
        httpx.Response(200, json={"results": [{"id": "2"}]}),
    ]
    stream = Stream(
        "crm/v3/objects/contacts",
        CursorInBody("paging.next.after", "after"),
        ("results",),
        params={"properties": "email"},
    )
    assert [r["id"] for r in await collect(pages_of(stream))] == ["1", "2"]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"properties": "email", "limit": "100"},
        {"properties": "email", "limit": "100", "after": "a"},
    ]


@respx.mock
async def test_numbered_pages_with_a_total_are_fetched_together_in_order():
    """Lofty's transactions: `pageNum` from 0, `pageSize`, `totalCount`."""

    def page(request: httpx.Request) -> httpx.Response:
        number, size = int(request.url.params["pageNum"]), int(request.url.params["pageSize"])
        ids = range(number * size, min(number * size + size, 250))
        return httpx.Response(200, json={"totalCount": 250, "pageData": [{"id": i} for i in ids]})

    route = respx.get(f"{BASE}/v2.0/transactions").mock(side_effect=page)
    numbers = PageNumber("pageNum", "pageSize", first_page=0, total_at=("totalCount",))
    stream = Stream("v2.0/transactions", numbers, ("pageData",))
    assert [r["id"] for r in await collect(pages_of(stream))] == list(range(250))
    assert sorted(int(c.request.url.params["pageNum"]) for c in route.calls) == [0, 1, 2]


@respx.mock
async def test_numbered_pages_without_a_total_stop_on_a_short_page():
    route = respx.get(f"{BASE}/items")
    route.side_effect = [
        httpx.Response(200, json={"data": [{"id": i} for i in range(100)]}),
        httpx.Response(200, json={"data": [{"id": 100}]}),
    ]
    stream = Stream("items", PageNumber(), ("data",))
    assert len(await collect(pages_of(stream))) == 101
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2"]


@respx.mock
async def test_a_link_header_is_followed_on_the_same_server_only():
    respx.get(f"{BASE}/items", params={"page": "2"}).respond(
        json=[{"id": 2}],
        headers={"Link": '<https://elsewhere.example/items?page=3>; rel="next"'},
    )
    respx.get(f"{BASE}/items").respond(
        json=[{"id": 1}],
        headers={"Link": f'<{BASE}/items?page=2&per_page=100>; rel="next", <x>; rel="last"'},
    )
    stream = Stream("items", LinkHeader(), ())
    with pytest.raises(RemoteError, match="outside the configured base URL"):
        await collect(pages_of(stream))


@respx.mock
async def test_a_link_header_pages_until_there_is_no_next():
    respx.get(f"{BASE}/items", params={"page": "2"}).respond(json=[{"id": 2}])
    respx.get(f"{BASE}/items").respond(
        json=[{"id": 1}], headers={"link": '</items?page=2>; rel="next"'}
    )
    assert [r["id"] for r in await collect(pages_of(Stream("items", LinkHeader(), ())))] == [1, 2]


@respx.mock
async def test_records_a_stream_skips_are_left_out():
    respx.get(f"{BASE}/api/people").respond(json=[{"id": 1, "archived": True}, {"id": 2}])
    stream = Stream("api/people", SinglePage(), (), skip=lambda r: r.get("archived") is True)
    assert await collect(pages_of(stream)) == [{"id": 2}]


# -- a long single response, read as it arrives ----------------------------------------------

TRICKY = [
    {"id": 1, "note": "a },{ inside a string", "tags": [{"name": "x"}, {"name": "y"}]},
    {"id": 2, "note": 'quote \\" and }, {', "nested": {"a": [{"b": 1}, {"c": 2}]}},
    {"id": 3, "note": "José}]"},
]


@given(
    records=st.lists(
        st.fixed_dictionaries(
            {
                # exact within 64 bits; beyond, a float, as jsoncodec documents (orjson's way)
                "id": st.integers(min_value=-(2**63), max_value=2**64 - 1),
                "note": st.text(alphabet='{}[],: "\\ab\n', max_size=12),
            }
        ),
        max_size=8,
    ),
    indent=st.sampled_from([None, 1]),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=8),
)
def test_an_array_is_split_into_its_records_however_its_bytes_arrive(records, indent, cuts):
    body = json.dumps(TRICKY + records, indent=indent).encode()
    splitter = ArraySplitter((), "c")
    found: list = []
    start = 0
    for cut in sorted({min(c, len(body)) for c in cuts}):
        found += splitter.feed(body[start:cut])
        start = cut
    found += splitter.feed(body[start:])
    found += splitter.close()
    assert found == TRICKY + records


def counted_decodes(monkeypatch) -> list[int]:
    """The splitter's JSON decodes, counted in the one-item list returned."""
    import crm_tui.sources.pagination as pagination

    decodes = [0]
    real_loads = pagination.orjson.loads

    def counting(data):
        decodes[0] += 1
        return real_loads(data)

    monkeypatch.setattr(pagination.orjson, "loads", counting)
    return decodes


def test_records_full_of_nested_objects_cost_a_few_decodes_per_chunk(monkeypatch):
    records = [
        {"id": i, "emails": [{"value": f"{i}-{k}@x.example"} for k in range(200)]}
        for i in range(40)
    ]
    body = json.dumps(records).encode()
    decodes = counted_decodes(monkeypatch)
    splitter = ArraySplitter((), "c")
    chunks = [body[i : i + 512] for i in range(0, len(body), 512)]
    batches = [splitter.feed(chunk) for chunk in chunks] + [splitter.close()]
    assert [r for batch in batches for r in batch] == records
    assert sum(1 for batch in batches if batch) >= 20  # handed on as they arrive
    assert decodes[0] <= 3 * len(chunks) + 1  # not one per nested boundary in the buffer


def test_a_body_arriving_a_byte_at_a_time_decodes_each_boundary_once_at_most(monkeypatch):
    records = [{"id": i, "links": [{"id": k} for k in range(60)]} for i in range(4)]
    body = json.dumps(records).encode()
    decodes = counted_decodes(monkeypatch)
    splitter = ArraySplitter((), "c")
    found = [r for i in range(len(body)) for r in splitter.feed(body[i : i + 1])]
    assert found + splitter.close() == records
    assert decodes[0] <= body.count(b"}, {") + 1


def test_an_envelope_is_read_whole_and_a_cut_body_is_an_error():
    splitter = ArraySplitter(("people",), "c")
    assert splitter.feed(b'{"people": [{"id": 1},') == []
    assert splitter.feed(b' {"id": 2}]}') == []
    assert splitter.close() == [{"id": 1}, {"id": 2}]
    cut = ArraySplitter((), "c")
    assert cut.feed(b'[{"id": 1}, {"id": 2}, {"id"') == [{"id": 1}, {"id": 2}]
    with pytest.raises(ValueError):
        cut.close()


@respx.mock
async def test_a_streamed_array_is_retried_until_its_first_batch_only():
    route = respx.get(f"{BASE}/api/people")
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(200, content=b'[{"id": 1}, {"id": 2}]'),
    ]
    stream = Stream("api/people", SinglePage(stream=True), ("people",))
    assert [r["id"] for r in await collect(pages_of(stream))] == [1, 2]
    assert route.call_count == 2
    broken = respx.get(f"{BASE}/api/broken")
    broken.side_effect = [
        httpx.Response(200, content=b'[{"id": 1}, {"id": 2}, {"id": 3'),
        httpx.Response(200, content=b'[{"id": 1}]'),
    ]
    with pytest.raises(RemoteError, match="malformed JSON"):
        await collect(pages_of(Stream("api/broken", SinglePage(stream=True), ())))
    assert broken.call_count == 1  # a batch had gone out: no retry could take it back


@pytest.mark.parametrize(
    ("body", "cursor"),
    [
        (b'{"results":[{"id":"1"}],"paging":{"next":{"after":"NTI1","link":"x"}}}', "NTI1"),
        (b'{"results":[{"id":"1","after":"early"}],"paging":{"next":{"after":"late"}}}', "late"),
        # a deal's own association cursor, and no page cursor after it
        (b'{"results":[{"associations":{"contacts":{"paging":{"next":{"after":"MTAw"}}}}}]}', None),
        (b'{"results":[{"id":"1"}]}', None),
        (b'{"data":[],"additional_data":{"next_cursor":null}}', None),
    ],
)
def test_a_cursor_after_the_records_is_read_off_the_tail(body, cursor):
    hubspot = b"results" in body
    peek = tail_cursor(*(("paging", "after") if hubspot else ("additional_data", "next_cursor")))
    assert peek(body) == cursor


@respx.mock
async def test_a_cursor_at_the_tail_is_followed_before_the_page_is_handed_over():
    route = respx.get(f"{BASE}/crm/v3/objects/contacts")
    route.side_effect = [
        httpx.Response(200, json={"results": [{"id": "1"}], "paging": {"next": {"after": "a"}}}),
        httpx.Response(200, json={"results": [{"id": "2"}]}),
    ]
    cursor = CursorInBody("paging.next.after", "after", peek=tail_cursor("paging", "after"))
    pages = pages_of(Stream("crm/v3/objects/contacts", cursor, ("results",)))
    first = await anext(pages)
    assert [r["id"] for r in first.records] == ["1"] and route.call_count == 2
    assert [r["id"] for p in [p async for p in pages] for r in p.records] == ["2"]


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.pipedrive.com", "https://api.pipedrive.com/api/v2"),
        ("https://acme.pipedrive.com/", "https://acme.pipedrive.com/api/v2"),
        ("https://api.pipedrive.com/api/v2", "https://api.pipedrive.com/api/v2"),
        ("https://api.pipedrive.com/api/v2/", "https://api.pipedrive.com/api/v2"),
        ("https://proxy.example/crm/api/v2", "https://proxy.example/crm/api/v2"),
        ("https://proxy.example/api/v2x", "https://proxy.example/api/v2x/api/v2"),
    ],
)
def test_a_declared_base_path_is_added_only_when_missing(base, expected):
    assert _with_path(base, "api/v2") == expected
    assert _with_path(base, "") == base
