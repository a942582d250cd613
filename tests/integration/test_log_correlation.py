"""One order followed through the JSON logs of both services: S3's /decide binds signal_id and
the intent's ids, S4's intake (REST and stream) and its execution task bind them again, and
svckit's handler writes them on every line, down to the last fill."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from svckit import keys
from svckit.logging import bind_log_context, log_context, log_scope, make_handler
from svckit.redisio import RedisClient
from tests.helpers import decide_live_until_open
from tests.integration.test_s3_s4 import DECIDE, Stack, wait_for
from tests.integration.test_s3_s4 import stack as stack  # the fixture, for pytest
from tradekit.enums import Market


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The services' own handler (svckit.logging.make_handler) on the root logger, as
    configure_logging installs it, writing into a buffer."""
    buf = io.StringIO()
    handler = make_handler("test", buf)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in buf.getvalue().splitlines() if line]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_log_scope_with_nested_binding_restores_the_outer_ids_on_exit() -> None:
    buf = io.StringIO()
    log = logging.getLogger("tests.correlation")
    log.addHandler(make_handler("test", buf))
    log.setLevel(logging.INFO)
    log.propagate = False
    with log_scope(signal_id="sig-1"):
        bind_log_context(intent_id="int-1", client_order_id="coid-1")
        log.info("inside")
        with log_scope(client_order_id="coid-2"):
            log.info("nested")
        log.info("after nested", extra={"client_order_id": "explicit"})
    log.info("outside")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    want = {"signal_id": "sig-1", "intent_id": "int-1", "client_order_id": "coid-1"}
    assert want.items() <= lines[0].items()
    assert lines[1]["client_order_id"] == "coid-2" and lines[1]["intent_id"] == "int-1"
    assert lines[2]["client_order_id"] == "explicit"  # extra= wins over the context
    assert not {"signal_id", "intent_id", "client_order_id"} & set(lines[3])
    assert log_context() == {}


async def test_one_order_from_decide_to_last_fill_carries_its_ids_in_both_services_logs(
    stack: Callable[..., Awaitable[Stack]],
    redis: RedisClient,
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    st = await stack(brackets=False)
    body = await decide_live_until_open(st.s3, DECIDE)
    assert body["decision"] == "open", body
    intent = body["intent"]
    coid, ids = (
        intent["client_order_id"],
        {
            "signal_id": body["signal_id"],
            "intent_id": intent["intent_id"],
            "client_order_id": intent["client_order_id"],
        },
    )

    async def executed() -> bool:
        return await redis.xlen(keys.ORDERS_EXECUTED) == 1

    await wait_for(executed)
    trades = [
        t
        for t in await st.s4c.exchange.fetch_my_trades(Market.FUT, "BTCUSDT")
        if t.client_order_id.startswith(coid)
    ]
    assert trades
    lines = json_logs()
    mine = [x for x in lines if x.get("client_order_id") == coid]
    s3 = [x for x in mine if x["logger"].startswith("s3_strategy")]
    s4 = [x for x in mine if x["logger"].startswith("s4_router")]
    assert any("published" in x["msg"] for x in s3), lines
    assert all(x.get("signal_id") == ids["signal_id"] for x in s3)
    assert all(x.get("intent_id") == ids["intent_id"] for x in mine)
    fills = [x for x in s4 if x["msg"].startswith("fill ")]
    assert len(fills) == len(trades), [x["msg"] for x in s4]
    # Down to the last fill, S4's execution task logs under the decision's signal_id too.
    for line in fills:
        assert {k: line.get(k) for k in ids} == ids, line
    # No line about this order goes without its ids (a message naming it is about it).
    about = [x for x in lines if coid in x["msg"]]
    assert about and all(x.get("client_order_id") == coid for x in about), about
