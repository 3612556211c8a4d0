"""Settings every contract test shares."""

from __future__ import annotations

import os

# Pact's verifier reports usage to the Pact Foundation unless told not to: tests send nothing anywhere.
os.environ["PACT_DO_NOT_TRACK"] = "true"
