"""The admin API: breaker states, and manual control of them, behind a bearer token.

Manual changes are the library's own (``force_open``, ``disable``, ``metrics_only``, ``reset``),
so they are exported like any state change: the ``circuit_breaker.state`` gauge shows the manual
state and ``circuit_breaker.transitions`` counts the move, which is what the
CircuitBreakerManualState alert and the dashboards read.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from breakerpanel import BreakerRegistry, describe_breaker
from breakerpanel.guards import ConstantTime, LockoutGuard, LockoutPolicy, constant_time_equals
from breakerpanel.integrations.guards import client_address

__all__ = ["StateChange", "admin_router"]

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="DEMO_ADMIN_TOKEN")


class StateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``closed`` returns the breaker to automatic control (a reset).
    state: Literal["forced_open", "disabled", "metrics_only", "closed"]
    #: With ``forced_open``: seconds until it lets probes through again; none keeps it open.
    duration_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _duration_with_forced_open(self) -> StateChange:
        if self.duration_s is not None and self.state != "forced_open":
            raise ValueError("duration_s applies to forced_open only")
        return self


#: Bad admin tokens from one address: 10 in 5 minutes lock it out for 30 s, doubling up to an hour.
ADMIN_LOCKOUT = LockoutPolicy(max_failures=10, window=300, base_lockout=30, multiplier=2, max_lockout=3600)
#: Every answer to an admin request that fails or is locked takes at least this long.
ADMIN_MIN_DURATION = 0.05


def admin_router(registry: BreakerRegistry, token: bytes | None, lockout: LockoutGuard | None = None) -> APIRouter:
    """The ``/admin`` routes; with ``token`` None they answer 503 (the admin API is off).

    ``lockout`` (by default an in-memory one) locks out addresses that keep presenting bad tokens:
    they get 429 with ``Retry-After``. There is a single principal (the token), so only addresses
    are locked: locking the principal would let anyone lock the operators out."""
    # Digests of equal length: compare_digest then takes the same time whatever the token's
    # length and whichever byte differs.
    expected = hashlib.sha256(token).digest() if token is not None else None
    guard = lockout if lockout is not None else LockoutGuard("demo.admin", ADMIN_LOCKOUT, address_policy=ADMIN_LOCKOUT)

    async def authorized(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> None:
        if expected is None:
            raise HTTPException(503, "the admin API is off: set DEMO_ADMIN_TOKEN or DEMO_ADMIN_TOKEN_FILE")
        address = client_address(request.scope)
        presented = hashlib.sha256(credentials.credentials.encode() if credentials else b"").digest()
        valid = credentials is not None and constant_time_equals(presented, expected)
        if valid and not (await guard.check(None, address)).locked:
            return
        # Failed or locked: the same minimum time either way.
        async with ConstantTime(ADMIN_MIN_DURATION):
            status = await guard.check(None, address)
            if status.locked:
                retry = str(max(1, math.ceil(status.retry_after)))  # never before the lock ends
                raise HTTPException(429, "too many bad tokens from this address", headers={"Retry-After": retry})
            await guard.failed(None, address)
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(authorized)])

    @router.get("/breakers")
    async def breakers() -> dict[str, list[dict[str, Any]]]:
        return {"breakers": [describe_breaker(b) for b in registry]}

    @router.post("/breakers/{name}/state")
    async def set_state(name: str, change: StateChange) -> dict[str, Any]:
        if name not in registry:
            raise HTTPException(404, f"no breaker named {name!r}")
        breaker = registry[name]
        if change.state == "forced_open":
            breaker.force_open(change.duration_s)
        elif change.state == "disabled":
            breaker.disable()
        elif change.state == "metrics_only":
            breaker.metrics_only()
        else:
            breaker.reset()
        logger.warning("admin: breaker %s set to %s by hand", name, change.state)
        return describe_breaker(breaker)

    return router
