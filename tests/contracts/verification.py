"""Running :class:`pact.Verifier` over a committed pact file, with the verifier's own report on failure."""

from __future__ import annotations

import pytest
from pact import Verifier

from .pactfiles import REGENERATE, CommittedPact
from .states import ProviderStates

__all__ = ["verify_committed"]


def verify_committed(verifier: Verifier, pact_file: CommittedPact, states: ProviderStates | None = None) -> None:
    """Replay every interaction of the committed ``pact_file`` against the provider ``verifier`` is set up for
    (transport, headers), with ``states`` (running) setting up provider states; fail the test with the verifier's
    report when one does not match."""
    assert pact_file.path.exists(), f"{pact_file.path.name} is missing: generate it with `{REGENERATE}`"
    verifier.add_source(pact_file.path).set_error_on_empty_pact(enabled=True).set_coloured_output(enabled=False)
    if states is not None:
        verifier.state_handler(states.url, body=True)
    try:
        verifier.verify()
    except RuntimeError:
        report = verifier.output(strip_ansi=True)
        errors = "\n".join(states.errors) if states is not None else ""
        pytest.fail(f"{pact_file.provider} does not honour {pact_file.path.name}:\n{report}\n{errors}".rstrip())
