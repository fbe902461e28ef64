# The end-to-end HTTP walks again with the store in PostgreSQL (DATABASE_URL): real activities
# to /api/messages, a fake Bot Connector on loopback, a throwaway PostgreSQL server. The SAME
# test functions as tests/test_e2e.py, collected here once more on the other backend.
from __future__ import annotations

import pytest

from tests.test_e2e import (  # noqa: F401  (collected here: the same tests, on PostgreSQL)
    test_allegations_never_reach_the_dsl_channel,
    test_an_alert_is_never_abandoned_and_the_reporter_is_told_the_truth,
    test_each_flow_reaches_the_dsl_channel_and_the_acknowledgement_reaches_the_reporter,
    test_only_the_dsl_team_can_act_and_the_first_acknowledgement_wins,
    test_the_same_activity_delivered_twice_advances_the_flow_once,
)

pytestmark = pytest.mark.every_backend(backends=("postgresql",))
