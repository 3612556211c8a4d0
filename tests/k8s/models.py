"""Typed models of the mesh and chaos resources we render, written from each project's reference.

Only the fields those references document exist here, with their types and enums; ``extra="forbid"``
makes a misspelt or invented field fail. Fields we never write are still listed where they are
short, so that a valid manifest someone edits by hand keeps validating.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Go-style durations, as Istio's CRDs and Linkerd's annotation parser take them ("10s", "250ms", "1h").
_DURATION = re.compile(r"^(\d+(\.\d+)?(h|ms|m|s|us|µs|ns))+$")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def seconds(duration: str) -> float:
    """``"1m30s"`` -> 90.0."""
    if not _DURATION.match(duration):
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(n) * _UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(h|ms|m|s|us|µs|ns)", duration))


def _duration(value: str) -> str:
    seconds(value)
    return value


def _istio_duration(value: str) -> str:
    # Istio's validation: "duration must be at least 1ms".
    if seconds(value) < 0.001:
        raise ValueError(f"{value!r} is shorter than 1ms")
    return value


Duration = Annotated[str, AfterValidator(_duration)]
IstioDuration = Annotated[str, AfterValidator(_istio_duration)]
Percent = Annotated[int, Field(ge=0, le=100)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ObjectMeta(BaseModel):
    """The part of Kubernetes ObjectMeta we write (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]
    namespace: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


# --------------------------------------------------------------------------- Istio


class TCPSettings(_Model):
    """ConnectionPoolSettings.TCPSettings: https://istio.io/latest/docs/reference/config/networking/destination-rule/#ConnectionPoolSettings-TCPSettings"""

    maxConnections: int | None = Field(None, ge=0)
    connectTimeout: IstioDuration | None = None
    tcpKeepalive: dict[str, Any] | None = None
    maxConnectionDuration: IstioDuration | None = None
    idleTimeout: IstioDuration | None = None


class HTTPSettings(_Model):
    """ConnectionPoolSettings.HTTPSettings: https://istio.io/latest/docs/reference/config/networking/destination-rule/#ConnectionPoolSettings-HTTPSettings"""

    http1MaxPendingRequests: int | None = Field(None, ge=0)
    http2MaxRequests: int | None = Field(None, ge=0)
    maxRequestsPerConnection: int | None = Field(None, ge=0)
    maxRetries: int | None = Field(None, ge=0)
    idleTimeout: IstioDuration | None = None
    h2UpgradePolicy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] | None = None
    useClientProtocol: bool | None = None
    maxConcurrentStreams: int | None = Field(None, ge=0)


class ConnectionPoolSettings(_Model):
    """https://istio.io/latest/docs/reference/config/networking/destination-rule/#ConnectionPoolSettings"""

    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(_Model):
    """https://istio.io/latest/docs/reference/config/networking/destination-rule/#OutlierDetection

    ``consecutiveErrors`` is gone (removed in favour of ``consecutive5xxErrors``)."""

    splitExternalLocalOriginErrors: bool | None = None
    consecutiveLocalOriginFailures: int | None = Field(None, ge=0)
    consecutiveGatewayErrors: int | None = Field(None, ge=0)
    consecutive5xxErrors: int | None = Field(None, ge=0)
    interval: IstioDuration | None = None
    baseEjectionTime: IstioDuration | None = None
    maxEjectionPercent: Percent | None = None
    minHealthPercent: Percent | None = None


class TrafficPolicy(_Model):
    """https://istio.io/latest/docs/reference/config/networking/destination-rule/#TrafficPolicy"""

    loadBalancer: dict[str, Any] | None = None
    connectionPool: ConnectionPoolSettings | None = None
    outlierDetection: OutlierDetection | None = None
    tls: dict[str, Any] | None = None
    portLevelSettings: list[dict[str, Any]] | None = None
    tunnel: dict[str, Any] | None = None
    proxyProtocol: dict[str, Any] | None = None
    retryBudget: dict[str, Any] | None = None


class DestinationRuleSpec(_Model):
    """https://istio.io/latest/docs/reference/config/networking/destination-rule/#DestinationRule (host is required)."""

    host: str
    trafficPolicy: TrafficPolicy | None = None
    subsets: list[dict[str, Any]] | None = None
    exportTo: list[str] | None = None
    workloadSelector: dict[str, Any] | None = None


class DestinationRule(_Model):
    apiVersion: Literal["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
    kind: Literal["DestinationRule"]
    metadata: ObjectMeta
    spec: DestinationRuleSpec


class StringMatch(_Model):
    """Exactly one of exact, prefix, regex: https://istio.io/latest/docs/reference/config/networking/virtual-service/#StringMatch"""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one(self) -> StringMatch:
        if sum(v is not None for v in (self.exact, self.prefix, self.regex)) != 1:
            raise ValueError("a StringMatch has exactly one of exact, prefix, regex")
        return self


class HTTPMatchRequest(_Model):
    """https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPMatchRequest"""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] | None = None
    port: int | None = None
    sourceLabels: dict[str, str] | None = None
    gateways: list[str] | None = None
    queryParams: dict[str, StringMatch] | None = None
    ignoreUriCase: bool | None = None
    withoutHeaders: dict[str, StringMatch] | None = None
    sourceNamespace: str | None = None
    statPrefix: str | None = None


class PortSelector(_Model):
    number: int = Field(ge=1, le=65535)


class Destination(_Model):
    """https://istio.io/latest/docs/reference/config/networking/virtual-service/#Destination (host is required)."""

    host: str
    subset: str | None = None
    port: PortSelector | None = None


class HTTPRouteDestination(_Model):
    destination: Destination
    weight: int | None = Field(None, ge=0)
    headers: dict[str, Any] | None = None


_RETRY_ON = {
    # Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on policies, which Istio's retryOn takes.
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
}


def _retry_on(value: str) -> str:
    for policy in value.split(","):
        if policy not in _RETRY_ON and not policy.isdigit():
            raise ValueError(f"unknown retryOn policy {policy!r}")
    return value


class HTTPRetry(_Model):
    """https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRetry

    ``attempts: 0`` disables retries (Istio retries by default otherwise)."""

    attempts: int = Field(ge=0)
    perTryTimeout: IstioDuration | None = None
    retryOn: Annotated[str, AfterValidator(_retry_on)] | None = None
    retryRemoteLocalities: bool | None = None
    backoff: IstioDuration | None = None


class HTTPRoute(_Model):
    """https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRoute"""

    name: str | None = None
    match: list[HTTPMatchRequest] | None = None
    route: list[HTTPRouteDestination] | None = None
    redirect: dict[str, Any] | None = None
    directResponse: dict[str, Any] | None = None
    delegate: dict[str, Any] | None = None
    rewrite: dict[str, Any] | None = None
    timeout: IstioDuration | None = None
    retries: HTTPRetry | None = None
    fault: dict[str, Any] | None = None
    mirror: dict[str, Any] | None = None
    mirrors: list[dict[str, Any]] | None = None
    corsPolicy: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None


class VirtualServiceSpec(_Model):
    """https://istio.io/latest/docs/reference/config/networking/virtual-service/#VirtualService"""

    hosts: list[str] = Field(min_length=1)
    gateways: list[str] | None = None
    http: list[HTTPRoute] | None = None
    tls: list[dict[str, Any]] | None = None
    tcp: list[dict[str, Any]] | None = None
    exportTo: list[str] | None = None


class VirtualService(_Model):
    apiVersion: Literal["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
    kind: Literal["VirtualService"]
    metadata: ObjectMeta
    spec: VirtualServiceSpec


# --------------------------------------------------------------------------- Linkerd and Gateway API


def _count(value: str) -> str:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _ratio(value: str) -> str:
    if not 0 <= float(value) <= 100:
        raise ValueError(f"jitter-ratio must be within [0, 100], got {value!r}")
    return value


def _http_conditions(value: str) -> str:
    for condition in value.split(","):
        low, _, high = condition.partition("-")
        if condition in ("5xx", "gateway-error") or (low.isdigit() and (not high or high.isdigit())):
            continue
        raise ValueError(f"not a retry condition (5xx, gateway-error, a status or a range): {condition!r}")
    return value


class LinkerdServiceAnnotations(_Model):
    """Failure accrual on a Service: https://linkerd.io/2-edge/reference/circuit-breaking/
    ("consecutive" is the only mode; max-failures defaults to 7, min-penalty 1s, max-penalty 1m,
    jitter-ratio 0.5). Other annotations on the Service are not ours to check."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    failure_accrual: Literal["consecutive"] = Field(alias="balancer.linkerd.io/failure-accrual")
    max_failures: Annotated[str, AfterValidator(_count)] | None = Field(
        None, alias="balancer.linkerd.io/failure-accrual-consecutive-max-failures"
    )
    min_penalty: Duration | None = Field(None, alias="balancer.linkerd.io/failure-accrual-consecutive-min-penalty")
    max_penalty: Duration | None = Field(None, alias="balancer.linkerd.io/failure-accrual-consecutive-max-penalty")
    jitter_ratio: Annotated[str, AfterValidator(_ratio)] | None = Field(
        None, alias="balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio"
    )

    @model_validator(mode="after")
    def _ordered(self) -> LinkerdServiceAnnotations:
        if self.min_penalty and self.max_penalty and seconds(self.max_penalty) < seconds(self.min_penalty):
            raise ValueError("max-penalty is shorter than min-penalty")
        return self


class LinkerdRouteAnnotations(_Model):
    """Retries and timeouts on an HTTPRoute: https://linkerd.io/2-edge/reference/retries/ and
    https://linkerd.io/2-edge/reference/timeouts/ (Linkerd 2.16+). ``retry.linkerd.io/limit`` "0"
    does not disable retries (it reads as unset): leaving out ``retry.linkerd.io/http`` does."""

    retry_http: Annotated[str, AfterValidator(_http_conditions)] | None = Field(None, alias="retry.linkerd.io/http")
    retry_limit: Annotated[str, AfterValidator(_count)] | None = Field(None, alias="retry.linkerd.io/limit")
    retry_timeout: Duration | None = Field(None, alias="retry.linkerd.io/timeout")
    retry_grpc: str | None = Field(None, alias="retry.linkerd.io/grpc")
    request: Duration | None = Field(None, alias="timeout.linkerd.io/request")
    response: Duration | None = Field(None, alias="timeout.linkerd.io/response")
    idle: Duration | None = Field(None, alias="timeout.linkerd.io/idle")


class ParentReference(_Model):
    """https://gateway-api.sigs.k8s.io/reference/spec/#parentreference (name is required)."""

    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str
    sectionName: str | None = None
    port: int | None = Field(None, ge=1, le=65535)


class HTTPPathMatch(_Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = "/"


class HTTPRouteMatch(_Model):
    """https://gateway-api.sigs.k8s.io/reference/spec/#httproutematch"""

    path: HTTPPathMatch | None = None
    headers: list[dict[str, Any]] | None = None
    queryParams: list[dict[str, Any]] | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] | None = None


class HTTPBackendRef(_Model):
    """https://gateway-api.sigs.k8s.io/reference/spec/#httpbackendref (a Service needs a port)."""

    group: str | None = None
    kind: str | None = None
    name: str
    namespace: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    weight: int | None = Field(None, ge=0)
    filters: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _port(self) -> HTTPBackendRef:
        if self.kind in (None, "Service") and self.port is None:
            raise ValueError("a backendRef to a Service needs a port")
        return self


class HTTPRouteRule(_Model):
    name: str | None = None
    matches: list[HTTPRouteMatch] | None = None
    filters: list[dict[str, Any]] | None = None
    backendRefs: list[HTTPBackendRef] | None = None
    timeouts: dict[str, Duration] | None = None
    retry: dict[str, Any] | None = None
    sessionPersistence: dict[str, Any] | None = None


class GatewayHTTPRouteSpec(_Model):
    parentRefs: list[ParentReference] = Field(min_length=1)
    hostnames: list[str] | None = None
    rules: list[HTTPRouteRule] = Field(min_length=1, max_length=16)


class GatewayHTTPRoute(_Model):
    """https://gateway-api.sigs.k8s.io/reference/spec/#httproute, as Linkerd reads it."""

    apiVersion: Literal[
        "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1", "policy.linkerd.io/v1beta3"
    ]
    kind: Literal["HTTPRoute"]
    metadata: ObjectMeta
    spec: GatewayHTTPRouteSpec


class ServicePatch(_Model):
    apiVersion: Literal["v1"]
    kind: Literal["Service"]
    metadata: ObjectMeta


# --------------------------------------------------------------------------- Litmus


class EnvVar(_Model):
    name: str
    value: str


class HTTPGet(_Model):
    criteria: Literal["==", "!=", "oneOf"]
    responseCode: str


class HTTPPost(_Model):
    contentType: str | None = None
    body: str | None = None
    bodyPath: str | None = None
    criteria: Literal["==", "!=", "oneOf"]
    responseCode: str

    @model_validator(mode="after")
    def _one_body(self) -> HTTPPost:
        if self.body is not None and self.bodyPath is not None:
            raise ValueError("body and bodyPath are mutually exclusive")
        return self


class HTTPMethod(_Model):
    get: HTTPGet | None = None
    post: HTTPPost | None = None

    @model_validator(mode="after")
    def _one(self) -> HTTPMethod:
        if (self.get is None) == (self.post is None):
            raise ValueError("exactly one of get, post")
        return self


class HTTPProbeInputs(_Model):
    url: str
    insecureSkipVerify: bool | None = None
    responseTimeout: int | None = None
    method: HTTPMethod


class RunProperties(_Model):
    """https://docs.litmuschaos.io/docs/concepts/probes (Litmus 3: durations are strings)."""

    probeTimeout: Duration
    interval: Duration
    retry: int | None = Field(None, ge=0)
    attempt: int | None = Field(None, ge=0)
    probePollingInterval: Duration | None = None
    initialDelay: Duration | None = None
    evaluationTimeout: Duration | None = None
    stopOnFailure: bool | None = None


class Probe(_Model):
    """https://docs.litmuschaos.io/docs/concepts/probes"""

    name: str
    type: Literal["httpProbe", "cmdProbe", "k8sProbe", "promProbe"]
    mode: Literal["SOT", "EOT", "Edge", "Continuous", "OnChaos"]
    http_inputs: HTTPProbeInputs | None = Field(None, alias="httpProbe/inputs")
    cmd_inputs: dict[str, Any] | None = Field(None, alias="cmdProbe/inputs")
    k8s_inputs: dict[str, Any] | None = Field(None, alias="k8sProbe/inputs")
    prom_inputs: dict[str, Any] | None = Field(None, alias="promProbe/inputs")
    runProperties: RunProperties

    @model_validator(mode="after")
    def _inputs(self) -> Probe:
        if self.type == "httpProbe" and self.http_inputs is None:
            raise ValueError("an httpProbe needs httpProbe/inputs")
        return self


class Components(_Model):
    env: list[EnvVar] = []
    configMaps: list[dict[str, Any]] | None = None
    secrets: list[dict[str, Any]] | None = None
    statusCheckTimeouts: dict[str, int] | None = None
    resources: dict[str, Any] | None = None
    nodeSelector: dict[str, str] | None = None


class ExperimentSpec(_Model):
    components: Components
    probe: list[Probe] | None = None


class Experiment(_Model):
    name: str
    spec: ExperimentSpec


class AppInfo(_Model):
    appns: str
    applabel: Annotated[str, Field(pattern=r"^[\w./-]+(=|!=)[\w.-]+$")]
    appkind: Literal["deployment", "statefulset", "daemonset", "deploymentconfig", "rollout"]


class ChaosEngineSpec(_Model):
    """https://docs.litmuschaos.io/docs/concepts/chaos-engine"""

    engineState: Literal["active", "stop"]
    annotationCheck: Literal["true", "false"] | None = None
    jobCleanUpPolicy: Literal["delete", "retain"] | None = None
    chaosServiceAccount: str
    appinfo: AppInfo | None = None
    components: dict[str, Any] | None = None
    terminationGracePeriodSeconds: int | None = None
    experiments: list[Experiment] = Field(min_length=1)


class ChaosEngine(_Model):
    apiVersion: Literal["litmuschaos.io/v1alpha1"]
    kind: Literal["ChaosEngine"]
    metadata: ObjectMeta
    spec: ChaosEngineSpec


#: The environment each experiment reads: its fault.yaml in litmuschaos/chaos-charts
#: (faults/kubernetes/<name>/fault.yaml, 3.x), plus the common tunables
#: (https://docs.litmuschaos.io/docs/experiments/... "common tunables for all faults").
_COMMON_ENV = {
    "TOTAL_CHAOS_DURATION",
    "RAMP_TIME",
    "CHAOS_INTERVAL",
    "PODS_AFFECTED_PERC",
    "TARGET_PODS",
    "SEQUENCE",
    "NODE_LABEL",
    "DEFAULT_HEALTH_CHECK",
    "TARGET_CONTAINER",
    "LIB_IMAGE",
}
_HTTP_ENV = {"TARGET_SERVICE_PORT", "TOXICITY", "PROXY_PORT", "NETWORK_INTERFACE", "CONTAINER_RUNTIME", "SOCKET_PATH"}
EXPERIMENT_ENV: dict[str, set[str]] = {
    "pod-http-status-code": _COMMON_ENV
    | _HTTP_ENV
    | {"STATUS_CODE", "MODIFY_RESPONSE_BODY", "RESPONSE_BODY", "CONTENT_ENCODING", "CONTENT_TYPE"},
    "pod-http-latency": _COMMON_ENV | _HTTP_ENV | {"LATENCY"},
    "pod-network-loss": _COMMON_ENV
    | {
        "NETWORK_INTERFACE",
        "TC_IMAGE",
        "NETWORK_PACKET_LOSS_PERCENTAGE",
        "CONTAINER_RUNTIME",
        "SOCKET_PATH",
        "DESTINATION_IPS",
        "DESTINATION_HOSTS",
    },
    "pod-delete": _COMMON_ENV | {"FORCE"},
}
#: pod-http-status-code's fault.yaml: "supported status code list" (no 429).
HTTP_STATUS_CODES = {200, 201, 202, 204, 300, 301, 302, 304, 307, 400, 401, 403, 404, 500, 501, 502, 503, 504}
