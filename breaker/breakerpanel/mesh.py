"""``breakerpanel mesh``: service-mesh policies that agree with a ``breakers.yaml``.

On Kubernetes a mesh also breaks circuits, per host; our breakers break them per endpoint and per
feature, with fallbacks. The two must not fight, so the mesh's settings are derived from the
breakers' (docs/kubernetes.md explains each rule):

- **Ejection after more failures than our breakers need to open.** ``consecutive5xxErrors``
  (Istio) and ``failure-accrual-consecutive-max-failures`` (Linkerd) are twice the failures the
  most tolerant breaker of the service needs, and at least Envoy's default of 5: a dependency that
  fails as a whole opens our breaker first, and its fallback answers.
- **Ejection no shorter than our open wait.** ``baseEjectionTime`` and Linkerd's ``min-penalty``
  are the breaker's first ``wait_in_open``: a host the mesh took out is not offered to our
  half-open probes sooner than our own wait would allow.
- **The mesh never ejects a whole dependency.** Istio: ``maxEjectionPercent`` 50 and
  ``minHealthPercent`` 50 (below that, Envoy routes to every host again), so an outage of all
  hosts reaches our breaker as real errors and not as the mesh's own 503s.
- **Timeouts longer than what our breakers measure.** Route timeouts are twice ``call_timeout``
  (or ``slow_call_duration`` where no ``call_timeout`` is set), so our breaker sees a slow call
  finish, or time out by its own clock, before the mesh cuts it.
- **No retries for calls that are not idempotent** (the LLM POSTs): a retry multiplies load on a
  struggling provider behind our breaker's back. Idempotent methods get one retry at most, on
  connection failures only.

Services reached over plain TCP (Redis, PostgreSQL: no HTTP routes in ``breakers.yaml``) get a
DestinationRule only: Istio counts their connection failures; Linkerd's failure accrual and route
policies are HTTP-only, so it has nothing to add there.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from breakerpanel import BreakerConfig, ExponentialBackoff, FixedWait, WindowType
from breakerpanel._outputs import checkout_default, require_options, write_or_check
from breakerpanel.config import BreakersFile, ConfigFileError, RouteSettings, load_config

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_NAMESPACE",
    "DEFAULT_PORTS",
    "MESHES",
    "MeshError",
    "RoutePolicy",
    "ServicePolicy",
    "explain",
    "host_assignment",
    "istio_manifests",
    "linkerd_manifests",
    "main",
    "plan",
    "port_assignment",
    "render",
    "rendered_files",
]

#: A checkout of the repository (this module is breaker/breakerpanel/mesh.py): paths are shown relative to it.
_REPOSITORY: Final = Path(__file__).resolve().parents[2]
#: The demo's breakers.yaml, the default in a checkout; an installed package needs --config.
DEFAULT_CONFIG: Final = _REPOSITORY / "demo" / "breakers.yaml"
DEFAULT_NAMESPACE: Final = "breakerpanel"
#: The demo stack's Service ports (deploy/k8s/base), by breakers.yaml service name.
DEFAULT_PORTS: Final[Mapping[str, int]] = {
    "openai": 8600,
    "anthropic": 8600,
    "qdrant": 6333,
    "redis": 6379,
    "postgres": 5432,
}
MESHES: Final = ("istio", "linkerd")

#: Envoy's own default for consecutive 5xx: never eject sooner than that.
MIN_CONSECUTIVE_FAILURES: Final = 5
#: Mesh consecutive-failure threshold = this many times what our most tolerant breaker needs.
FAILURE_MARGIN: Final = 2
#: Route timeout = this many times what our breaker measures (call_timeout or slow_call_duration).
TIMEOUT_FACTOR: Final = 2.0
#: Istio: at most this share of a service's hosts ejected, and no ejection below this share healthy.
MAX_EJECTION_PERCENT: Final = 50
MIN_HEALTH_PERCENT: Final = 50
#: How often Envoy sweeps ejected hosts back in, at most.
MAX_SWEEP_INTERVAL_S: Final = 10.0
CONNECT_TIMEOUT_S: Final = 5.0
#: Connection-pool limits high enough that the mesh never sheds load before our breakers do
#: (Envoy's defaults, written out so nobody lowers them by accident).
MAX_CONNECTIONS: Final = 1024
MAX_REQUESTS: Final = 1024
#: Methods a retry cannot do harm with (RFC 9110 safe methods).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

Protocol = Literal["http", "tcp"]
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


class MeshError(ValueError):
    """The options do not fit the configuration (an unknown service in ``--port``...)."""


@dataclass(frozen=True, kw_only=True)
class RoutePolicy:
    """One endpoint route of ``breakers.yaml`` as a mesh route."""

    breaker: str
    path: str | None
    path_regex: str | None
    methods: tuple[str, ...]
    timeout_s: float
    retries: int

    @property
    def idempotent(self) -> bool:
        return bool(self.methods) and set(self.methods) <= IDEMPOTENT_METHODS


@dataclass(frozen=True, kw_only=True)
class ServicePolicy:
    """What the mesh does for one ``breakers.yaml`` service, and what it was derived from."""

    name: str
    host: str
    port: int | None
    protocol: Protocol
    #: The fewest failures after which our most tolerant breaker of the service may open.
    breaker_trip_failures: int
    #: Our breakers' first and longest open wait, and what they measure a call against.
    breaker_wait_s: float
    breaker_max_wait_s: float
    breaker_jitter: float
    breaker_observe_s: float
    consecutive_failures: int
    ejection_s: float
    max_ejection_s: float
    sweep_interval_s: float
    timeout_s: float
    routes: tuple[RoutePolicy, ...]


# --------------------------------------------------------------------------- planning


def plan(
    config: BreakersFile,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    ports: Mapping[str, int] | None = None,
    hosts: Mapping[str, str] | None = None,
) -> list[ServicePolicy]:
    """The mesh policy of every service in ``config``, in file order."""
    ports = {**DEFAULT_PORTS, **(ports or {})}
    hosts = dict(hosts or {})
    unknown = sorted((set(hosts) | (set(ports) - set(DEFAULT_PORTS))) - set(config.services))
    if unknown:
        raise MeshError(f"not a service in the configuration: {', '.join(unknown)}")
    return [_service_policy(config, name, namespace, ports, hosts) for name in config.services]


def _service_policy(
    config: BreakersFile, name: str, namespace: str, ports: Mapping[str, int], hosts: Mapping[str, str]
) -> ServicePolicy:
    service = config.services[name]
    breakers = [name, *(f"{name}.{endpoint}" for endpoint in service.endpoints)]
    configs = {breaker: config.options_for(breaker).to_config() for breaker in breakers}
    http = any(endpoint.routes for endpoint in service.endpoints.values()) or bool(service.hosts)
    protocol: Protocol = "http" if http else "tcp"
    waits = [_waits(c) for c in configs.values()]
    wait_s = max(first for first, _, _ in waits)
    max_wait_s = max(longest for _, longest, _ in waits)
    jitter = max(j for _, _, j in waits)
    trip = max(_trip_failures(c) for c in configs.values())
    observe = _observe(configs[name])
    routes: list[RoutePolicy] = []
    for endpoint_name, endpoint in service.endpoints.items():
        breaker = f"{name}.{endpoint_name}"
        timeout = _observe(configs[breaker]) * TIMEOUT_FACTOR
        routes.extend(_route(breaker, route, timeout) for route in endpoint.routes)
    port = ports.get(name)
    if port is None and protocol == "http":
        port = 80
    return ServicePolicy(
        name=name,
        host=hosts.get(name, f"{name}.{namespace}.svc.cluster.local"),
        port=port,
        protocol=protocol,
        breaker_trip_failures=trip,
        breaker_wait_s=wait_s,
        breaker_max_wait_s=max_wait_s,
        breaker_jitter=jitter,
        breaker_observe_s=max(_observe(c) for c in configs.values()),
        consecutive_failures=max(MIN_CONSECUTIVE_FAILURES, FAILURE_MARGIN * trip),
        ejection_s=wait_s,
        max_ejection_s=max(max_wait_s, wait_s),
        sweep_interval_s=min(MAX_SWEEP_INTERVAL_S, wait_s),
        timeout_s=observe * TIMEOUT_FACTOR,
        routes=tuple(routes),
    )


def _route(breaker: str, route: RouteSettings, timeout_s: float) -> RoutePolicy:
    methods = tuple(m.upper() for m in route.methods or ())
    idempotent = bool(methods) and set(methods) <= IDEMPOTENT_METHODS
    return RoutePolicy(
        breaker=breaker,
        path=route.path,
        path_regex=route.path_regex,
        methods=methods,
        timeout_s=timeout_s,
        retries=1 if idempotent else 0,
    )


def _trip_failures(config: BreakerConfig) -> int:
    """The fewest failures after which this breaker can open: ``minimum_calls`` (capped at a
    count window's size) times the failure rate, or ``consecutive_failures_threshold`` if fewer."""
    calls = config.minimum_calls
    if config.sliding_window_type == WindowType.COUNT_BASED:
        calls = min(calls, config.sliding_window_size)
    needed = max(1, math.ceil(calls * config.failure_rate_threshold))
    if config.consecutive_failures_threshold is not None:
        needed = min(needed, config.consecutive_failures_threshold)
    return needed


def _waits(config: BreakerConfig) -> tuple[float, float, float]:
    """(first wait, longest wait, jitter) of a breaker's ``wait_in_open``."""
    wait = config.wait_in_open
    if isinstance(wait, FixedWait):
        return wait.seconds, wait.seconds, 0.0
    if isinstance(wait, ExponentialBackoff):
        return wait.initial, wait.maximum, wait.jitter
    if isinstance(wait, int | float):
        return float(wait), float(wait), 0.0
    # A custom strategy: ask it (it may be random; the first and a late attempt bound it).
    return wait(1), max(wait(1), wait(64)), 0.0


def _observe(config: BreakerConfig) -> float:
    """How long our breaker lets a call run before it has judged it: its timeout, or else the
    duration after which it counts the call as slow."""
    return config.call_timeout if config.call_timeout is not None else config.slow_call_duration


# --------------------------------------------------------------------------- rendering


def _duration(seconds: float) -> str:
    """``10s``, ``250ms``, ``1500ms``: what Istio and Linkerd both parse."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _dns_name(text: str) -> str:
    return _DNS_LABEL.sub("-", text.lower()).strip("-")


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "breakerpanel", "app.kubernetes.io/managed-by": "breakerpanel-mesh"}


def istio_manifests(policies: Sequence[ServicePolicy], *, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
    """A DestinationRule for every service, and a VirtualService for every HTTP one."""
    docs: list[dict[str, Any]] = []
    for policy in policies:
        docs.append(_destination_rule(policy, namespace))
        if policy.protocol == "http":
            docs.append(_virtual_service(policy, namespace))
    return docs


def _destination_rule(policy: ServicePolicy, namespace: str) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "tcp": {"maxConnections": MAX_CONNECTIONS, "connectTimeout": _duration(CONNECT_TIMEOUT_S)},
    }
    if policy.protocol == "http":
        pool["http"] = {"http1MaxPendingRequests": MAX_REQUESTS, "http2MaxRequests": MAX_REQUESTS}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": policy.name, "namespace": namespace, "labels": _labels()},
        "spec": {
            "host": policy.host,
            "trafficPolicy": {
                "connectionPool": pool,
                "outlierDetection": {
                    "consecutive5xxErrors": policy.consecutive_failures,
                    "interval": _duration(policy.sweep_interval_s),
                    "baseEjectionTime": _duration(policy.ejection_s),
                    "maxEjectionPercent": MAX_EJECTION_PERCENT,
                    "minHealthPercent": MIN_HEALTH_PERCENT,
                },
            },
        },
    }


def _virtual_service(policy: ServicePolicy, namespace: str) -> dict[str, Any]:
    destination: dict[str, Any] = {"host": policy.host}
    if policy.port is not None:
        destination["port"] = {"number": policy.port}
    http: list[dict[str, Any]] = []
    for route in policy.routes:
        uri = {"prefix": route.path} if route.path is not None else {"regex": route.path_regex}
        if route.path is None and route.path_regex is None:
            uri = {"prefix": "/"}
        matches = [{"uri": uri, "method": {"exact": m}} for m in route.methods] or [{"uri": uri}]
        http.append(
            {
                "name": route.breaker,
                "match": matches,
                "route": [{"destination": destination}],
                "timeout": _duration(route.timeout_s),
                "retries": _istio_retries(route.retries),
            }
        )
    # Everything else the service gets (no endpoint route matched): the service breaker's timing.
    http.append(
        {
            "name": policy.name,
            "route": [{"destination": destination}],
            "timeout": _duration(policy.timeout_s),
            "retries": _istio_retries(0),
        }
    )
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": policy.name, "namespace": namespace, "labels": _labels()},
        "spec": {"hosts": [policy.host], "http": http},
    }


def _istio_retries(attempts: int) -> dict[str, Any]:
    # Istio retries twice by default: say 0 explicitly where we want none.
    if attempts == 0:
        return {"attempts": 0}
    return {"attempts": attempts, "retryOn": "connect-failure,refused-stream,reset"}


def linkerd_manifests(
    policies: Sequence[ServicePolicy], *, namespace: str = DEFAULT_NAMESPACE
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(HTTPRoutes with retry and timeout annotations, Service patches with failure-accrual
    annotations), for the HTTP services."""
    routes: list[dict[str, Any]] = []
    patches: list[dict[str, Any]] = []
    for policy in policies:
        if policy.protocol != "http":
            continue
        patches.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": policy.name, "namespace": namespace, "annotations": _accrual(policy)},
            }
        )
        # Names unique within the namespace (kubectl apply keeps one object per name): an endpoint
        # with several routes numbers them, and the catch-all's suffix is one no endpoint's name
        # can make (an endpoint named "default" was openai-default too).
        counts: dict[str, int] = {}
        for route in policy.routes:
            counts[route.breaker] = counts.get(route.breaker, 0) + 1
        seen: dict[str, int] = {}
        for route in policy.routes:
            name = _dns_name(route.breaker.replace(".", "-"))
            if counts[route.breaker] > 1:
                seen[route.breaker] = seen.get(route.breaker, 0) + 1
                name = f"{name}-{seen[route.breaker]}"
            routes.append(_http_route(policy, namespace, name, route))
        routes.append(_http_route(policy, namespace, f"{_dns_name(policy.name)}--all", None))
    return routes, patches


def _accrual(policy: ServicePolicy) -> dict[str, str]:
    prefix = "balancer.linkerd.io/failure-accrual"
    annotations = {
        prefix: "consecutive",
        f"{prefix}-consecutive-max-failures": str(policy.consecutive_failures),
        f"{prefix}-consecutive-min-penalty": _duration(policy.ejection_s),
        f"{prefix}-consecutive-max-penalty": _duration(policy.max_ejection_s),
    }
    if policy.breaker_jitter:
        annotations[f"{prefix}-consecutive-jitter-ratio"] = f"{policy.breaker_jitter:g}"
    return annotations


def _http_route(policy: ServicePolicy, namespace: str, name: str, route: RoutePolicy | None) -> dict[str, Any]:
    port = policy.port if policy.port is not None else 80
    annotations: dict[str, str] = {}
    if route is None:
        matches: list[dict[str, Any]] = [{"path": {"type": "PathPrefix", "value": "/"}}]
        annotations["timeout.linkerd.io/request"] = _duration(policy.timeout_s)
    else:
        if route.path_regex is not None:
            path = {"type": "RegularExpression", "value": route.path_regex}
        else:
            path = {"type": "PathPrefix", "value": route.path or "/"}
        matches = [{"path": path, "method": m} for m in route.methods] or [{"path": path}]
        annotations["timeout.linkerd.io/request"] = _duration(route.timeout_s)
        # No retry annotations at all means no retries: `retry.linkerd.io/limit: "0"` would not.
        if route.retries:
            annotations["retry.linkerd.io/http"] = "gateway-error"
            annotations["retry.linkerd.io/limit"] = str(route.retries)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(), "annotations": annotations},
        "spec": {
            "parentRefs": [{"group": "core", "kind": "Service", "name": policy.name, "port": port}],
            "rules": [{"matches": matches, "backendRefs": [{"name": policy.name, "port": port}]}],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes shared objects out in full: no ``&id001`` anchors in a manifest."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(docs: Iterable[Mapping[str, Any]], *, header: str = "") -> str:
    """Multi-document YAML, with ``header`` as a leading comment."""
    parts = [yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, default_flow_style=False) for doc in docs]
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + "---\n" + "---\n".join(parts) if parts else comment


def rendered_files(
    mesh: str,
    config_path: Path,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    ports: Mapping[str, int] | None = None,
    hosts: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """File name -> text of what ``breakerpanel mesh MESH --out DIR`` writes."""
    policies = plan(load_config(config_path), namespace=namespace, ports=ports, hosts=hosts)
    shown = _shown(config_path)
    header = f"Generated by `breakerpanel mesh {mesh}` from {shown}: do not edit, regenerate.\ndocs/kubernetes.md"
    if mesh == "istio":
        return {"mesh.yaml": render(istio_manifests(policies, namespace=namespace), header=header)}
    if mesh == "linkerd":
        routes, patches = linkerd_manifests(policies, namespace=namespace)
        return {
            "http-routes.yaml": render(routes, header=header),
            "service-annotations.yaml": render(
                patches, header=header + "\nStrategic-merge patches on the base's Services."
            ),
        }
    raise MeshError(f"unknown mesh {mesh!r}: expected one of {', '.join(MESHES)}")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(_REPOSITORY))
    except ValueError:
        return str(path)


def explain(policies: Sequence[ServicePolicy]) -> str:
    """A table: what each service's breakers do, and what the mesh does for it."""
    head = ("service", "proto", "breaker trips", "mesh ejects", "open wait", "ejection", "measures", "timeout")
    rows = [head]
    for p in policies:
        rows.append(
            (
                p.name,
                p.protocol,
                f">= {p.breaker_trip_failures} failures",
                f"{p.consecutive_failures} in a row",
                _duration(p.breaker_wait_s),
                _duration(p.ejection_s),
                _duration(p.breaker_observe_s),
                _duration(p.timeout_s) if p.protocol == "http" else "-",
            )
        )
        for r in p.routes:
            rows.append(
                (
                    f"  {r.breaker}",
                    ",".join(r.methods) or "any",
                    "",
                    "",
                    "",
                    "",
                    _duration(r.timeout_s / TIMEOUT_FACTOR),
                    f"{_duration(r.timeout_s)}, retries {r.retries}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``breakerpanel mesh istio|linkerd [--config FILE] [--out DIR] [--check] [--explain]``."""
    parser = argparse.ArgumentParser(
        prog="breakerpanel mesh",
        description="Render a mesh's circuit-breaking, timeout and retry policies so that they agree with "
        "breakers.yaml (docs/kubernetes.md): the mesh ejects hosts, our breakers decide per endpoint and feature.",
    )
    parser.add_argument("mesh", choices=["istio", "linkerd"])
    parser.add_argument(
        "--config",
        type=Path,
        default=checkout_default(DEFAULT_CONFIG),
        help="the breakers.yaml (default: a checkout's demo/breakers.yaml)",
    )
    parser.add_argument("--namespace", default="breakerpanel", help="where the stack runs (default: %(default)s)")
    parser.add_argument(
        "--port", type=port_assignment, action="append", default=[], metavar="SERVICE=PORT", help="a Service's port"
    )
    parser.add_argument(
        "--host",
        type=host_assignment,
        action="append",
        default=[],
        metavar="SERVICE=HOST",
        help="a service's mesh host",
    )
    parser.add_argument("--out", type=Path, help="write the files here (an overlay folder) instead of printing")
    parser.add_argument("--check", action="store_true", help="with --out: only fail if the files are stale")
    parser.add_argument("--explain", action="store_true", help="print what each setting was derived from")
    args = parser.parse_args(argv)
    require_options(parser, args, "config")
    return _run(args)


def port_assignment(text: str) -> tuple[str, int]:
    """An argparse type: ``NAME=PORT``."""
    name, sep, number = text.partition("=")
    if not sep or not number.isdigit() or not 0 < int(number) < 65536:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {text!r}")
    return name, int(number)


def host_assignment(text: str) -> tuple[str, str]:
    """An argparse type: ``SERVICE=HOST``."""
    name, sep, host = text.partition("=")
    if not sep or not name or not host:
        raise argparse.ArgumentTypeError(f"expected SERVICE=HOST, got {text!r}")
    return name, host


def _run(args: argparse.Namespace) -> int:
    ports, hosts = dict(args.port), dict(args.host)
    try:
        if args.explain:
            print(explain(plan(load_config(args.config), namespace=args.namespace, ports=ports, hosts=hosts)))
            return 0
        files = rendered_files(args.mesh, args.config, namespace=args.namespace, ports=ports, hosts=hosts)
    except (ConfigFileError, MeshError) as exc:
        print(f"breakerpanel mesh: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        print("".join(files.values()), end="")
        return 0
    remake = f"breakerpanel mesh {args.mesh} --out {args.out}"
    return write_or_check({args.out / name: text for name, text in files.items()}, check=args.check, remake=remake)
