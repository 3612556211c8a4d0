"""Local fakes of PagerDuty's Events API v2 and the Slack Web API that speak the real wire format.

Tests drive them through the real SDKs (``pagerduty.EventsApiV2Client``, ``slack_sdk.WebClient`` and
``AsyncWebClient``); every request is checked against the documented API shapes and recorded, and each fake can
misbehave on demand (``fail_next``, ``set_rate_limit``, ``set_down``). See :mod:`tests.fakes.pagerduty` and
:mod:`tests.fakes.slack` for what is validated and the documents it comes from.

The pytest fixtures (``fake_pagerduty``, ``fake_slack`` and their session-scoped servers) live in
:mod:`tests.fakes.plugin`: import them into the conftest of the folder that uses them.
"""

from .pagerduty import (
    PAGERDUTY_RATE_LIMIT,
    FakePagerDuty,
    PagerDutyAlert,
    PagerDutyEvent,
    PagerDutyRejection,
    PagerDutyRequest,
)
from .slack import (
    FakeSlack,
    MessageVersion,
    SlackCall,
    SlackFile,
    SlackMessage,
    block_actions_payload,
    decode_interaction_payload,
    sign_slack_request,
)

__all__ = [
    "PAGERDUTY_RATE_LIMIT",
    "FakePagerDuty",
    "FakeSlack",
    "MessageVersion",
    "PagerDutyAlert",
    "PagerDutyEvent",
    "PagerDutyRejection",
    "PagerDutyRequest",
    "SlackCall",
    "SlackFile",
    "SlackMessage",
    "block_actions_payload",
    "decode_interaction_payload",
    "sign_slack_request",
]
