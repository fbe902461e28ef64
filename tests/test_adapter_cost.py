# The per-turn connector-client cost stays removed (bot/teams/adapter.py), whatever the SDK does.
from __future__ import annotations

from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials
from msrest.universal_http.requests import ClientRetryPolicy

import bot.teams.adapter  # noqa: F401  (applies the fix)

# What msrest 0.7.1 retries: 408, and every status from 500 except 501 and 505.
STOCK_SAFE_CODES = {i for i in range(500) if i != 408} | {501, 505}


class CountingSet(frozenset):
    """A frozenset that counts membership tests, to see what a client build costs."""

    tests = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.tests += 1
        return frozenset.__contains__(self, item)


def test_the_status_code_lookup_is_a_set_with_the_stock_codes():
    # A list here (the stock SDK) costs ~500 comparisons per lookup, ~1,000 lookups a client.
    assert isinstance(ClientRetryPolicy.safe_codes, frozenset)
    assert set(ClientRetryPolicy.safe_codes) == STOCK_SAFE_CODES


def test_a_connector_client_build_uses_that_lookup_and_keeps_the_retry_behaviour(monkeypatch):
    # If an SDK upgrade builds its retry policy some other way, this notices: the client must
    # still consult ClientRetryPolicy.safe_codes and end with the same codes to retry.
    monkeypatch.setattr(ClientRetryPolicy, "safe_codes", CountingSet(STOCK_SAFE_CODES))
    CountingSet.tests = 0
    client = ConnectorClient(MicrosoftAppCredentials("", ""), base_url="http://127.0.0.1/")
    assert CountingSet.tests == 999
    retry = client.config.retry_policy.policy
    assert set(retry.status_forcelist) == set(range(999)) - STOCK_SAFE_CODES
