"""Settings every contract test shares."""

from __future__ import annotations

import os

# The PagerDuty and Slack fakes' fixtures: registered here, where they are used, not in the root
# conftest (they need the incident bot's dependencies; the core's tests run without them).
from tests.fakes.plugin import fake_pagerduty, fake_pagerduty_server, fake_slack, fake_slack_server  # noqa: F401

# Pact's verifier reports usage to the Pact Foundation unless told not to: tests send nothing anywhere.
os.environ["PACT_DO_NOT_TRACK"] = "true"
