"""A local AWS for tests, the demo and the benchmarks: moto in server mode, plus what moto lacks.

`AwsDevServer` serves moto's WSGI app over real HTTP on 127.0.0.1 from a thread of this process,
behind a small middleware that

* counts requests per operation (`calls["monitoring.GetMetricData"]`), including retried and
  faulted ones: the service comes from the SigV4 credential scope, the operation from
  X-Amz-Target, the `Action` parameter, the RPC-v2 path, or else "METHOD /path";
* injects faults (`throttle`, `fail`, `fail_after_applying`) shaped like the real service's
  errors for its protocol, so botocore parses and retries them exactly as it would in AWS;
* answers CloudTrail `LookupEvents` (moto has no event history) from events added with
  `add_cloudtrail_event`.

Moto keeps its state in module globals: every server in one process shares one fake AWS, and
`reset()` clears it. moto is imported only when a server is started.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import threading
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from janitor.devserver.background import BackgroundServer, Serving
from janitor.model import require_aware

if TYPE_CHECKING:
    pass

ACCOUNT_ID = "123456789012"  # moto's default account: what STS GetCallerIdentity answers
NOTEBOOK_RESOURCE_TYPE = "AWS::SageMaker::NotebookInstance"

# Variables that would point boto3 somewhere else than the dev server if they leaked from the
# developer's shell; `env()` overrides some, callers should unset these (and AWS_ENDPOINT_URL_*).
LEAKY_ENV_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
_NOWHERE = "/nonexistent/janitor-devserver"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
_RPC_V2_PATH = re.compile(r"^/service/[^/]+/operation/([^/]+)$")
_CLOUDTRAIL_LOOKUP = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
_LIST_METRICS = "GraniteServiceVersion20100801.ListMetrics"
_LIST_METRICS_PAGE = 500
# ListMetrics lists only series with a datapoint this recent (real CloudWatch: two weeks).
LIST_METRICS_WINDOW = timedelta(days=14)
# SigV4 signing names whose IAM action prefix differs.
_IAM_PREFIX = {"monitoring": "cloudwatch", "tagging": "tag"}
_LOOKUP_KEYS = {
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
}


@dataclass(frozen=True, slots=True)
class _Fault:
    code: str | None  # None: the protocol's own throttling code
    status: int
    message: str
    apply: bool = False  # the request reaches moto and takes effect; its answer is replaced


@dataclass(frozen=True, slots=True)
class _TrailEvent:
    seq: int
    event_id: str
    region: str
    event_name: str
    event_source: str
    resource_type: str
    resource_name: str
    at: datetime
    username: str
    read_only: bool
    request_parameters: Mapping[str, Any] = field(default_factory=dict)

    def attribute(self, key: str) -> str:
        return {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": "true" if self.read_only else "false",
            "Username": self.username,
            "ResourceType": self.resource_type,
            "ResourceName": self.resource_name,
            "EventSource": self.event_source,
            "AccessKeyId": "ASIADEVSERVER0000000",
        }[key]

    def to_api(self) -> dict[str, Any]:
        when = self.at.astimezone(UTC)
        record = {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDADEVSERVER0000000",
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/{self.username}",
                "accountId": ACCOUNT_ID,
                "accessKeyId": "ASIADEVSERVER0000000",
                "userName": self.username,
            },
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": self.event_source,
            "eventName": self.event_name,
            "awsRegion": self.region,
            "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-internal/3 aws-sdk-java/1.12",
            "requestParameters": dict(self.request_parameters),
            "responseElements": None,
            "requestID": str(uuid.uuid5(uuid.NAMESPACE_URL, self.event_id)),
            "eventID": self.event_id,
            "readOnly": self.read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT_ID,
            "eventCategory": "Management",
        }
        return {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": "true" if self.read_only else "false",
            "AccessKeyId": "ASIADEVSERVER0000000",
            "EventTime": when.timestamp(),
            "EventSource": self.event_source,
            "Username": self.username,
            "Resources": [{"ResourceType": self.resource_type, "ResourceName": self.resource_name}],
            "CloudTrailEvent": json.dumps(record),
        }


class _ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class _Call:
    service: str
    region: str
    operation: str
    protocol: str  # json | cbor | query | ec2 | rest-xml | rest-json
    json_version: str = "1.1"

    @property
    def key(self) -> str:
        return f"{self.service}.{self.operation}"


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back so the wrapped app can read it again."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return bytes(body)


def _identify(environ: dict[str, Any]) -> _Call:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = _CREDENTIAL.search(auth)
    region, service = (match.group(1), match.group(2)) if match else ("us-east-1", "unsigned")
    content_type = environ.get("CONTENT_TYPE", "")
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    target = environ.get("HTTP_X_AMZ_TARGET", "")

    if content_type.startswith("application/x-amz-json-"):
        protocol = "json"
    elif content_type.startswith("application/cbor") or _RPC_V2_PATH.match(path):
        protocol = "cbor"
    elif content_type.startswith("application/x-www-form-urlencoded"):
        protocol = "ec2" if service == "ec2" else "query"
    elif service == "s3":
        protocol = "rest-xml"
    else:
        protocol = "rest-json"
    json_version = content_type.removeprefix("application/x-amz-json-") or "1.1"

    operation = ""
    if target:
        operation = target.rsplit(".", 1)[-1]
    elif protocol in ("query", "ec2"):
        form = parse_qs(_read_body(environ).decode("utf-8", "replace"))
        operation = (form.get("Action") or [""])[0]
    if not operation:
        operation = (parse_qs(environ.get("QUERY_STRING", "")).get("Action") or [""])[0]
    if not operation and (rpc := _RPC_V2_PATH.match(path)):
        operation = rpc.group(1)
    if not operation:
        operation = f"{method} {path}"
    return _Call(service, region, operation, protocol, json_version)


def _cbor_text(value: str) -> bytes:
    data = value.encode("utf-8")
    return _cbor_head(3, len(data)) + data


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([(major << 5) | length])
    if length < 0x100:
        return bytes([(major << 5) | 24, length])
    if length < 0x10000:
        return bytes([(major << 5) | 25]) + length.to_bytes(2, "big")
    return bytes([(major << 5) | 26]) + length.to_bytes(4, "big")


def _error_response(call: _Call, code: str, message: str, status: int) -> tuple[bytes, list[Any]]:
    request_id = str(uuid.uuid4())
    headers: list[tuple[str, str]] = [("x-amzn-RequestId", request_id)]
    body: bytes
    if call.protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers.append(("Content-Type", f"application/x-amz-json-{call.json_version}"))
    elif call.protocol == "cbor":
        body = _cbor_head(5, 2) + _cbor_text("__type") + _cbor_text(code)
        body += _cbor_text("message") + _cbor_text(message)
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif call.protocol == "query":
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{_xml(code)}</Code><Message>{_xml(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    elif call.protocol == "ec2":
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error>"
            f"<Code>{_xml(code)}</Code><Message>{_xml(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers.append(("Content-Type", "text/xml;charset=UTF-8"))
    elif call.protocol == "rest-xml":
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{_xml(code)}</Code>"
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers.append(("Content-Type", "application/xml"))
    else:
        body = json.dumps({"message": message}).encode()
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    headers.append(("Content-Length", str(len(body))))
    return body, headers


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _throttling_code(call: _Call) -> tuple[str, int]:
    """What the service really answers when it throttles, per protocol."""
    if call.protocol == "query":
        return "Throttling", 400
    if call.protocol == "ec2":
        return "RequestLimitExceeded", 503
    if call.protocol == "rest-xml":
        return "SlowDown", 503
    return "ThrottlingException", 400


_STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class AwsDevServer(BackgroundServer[Serving]):
    """moto in server mode on 127.0.0.1, in-process, plus what moto lacks."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._faults: dict[str, deque[_Fault | None]] = {}  # None: let that request through
        self._events: list[_TrailEvent] = []
        self._seq = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        handler = _quiet_handler()
        moto_app = DomainDispatcherApplication(create_backend_app)
        server = make_server(
            self._host,
            self._port,
            self._middleware(moto_app),
            threaded=True,
            request_handler=handler,
        )
        self._serve(server, "aws-devserver")

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port_in_use()}"

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """Environment variables pointing boto3 (and the janitor CLI) at this server only.

        Also unset `LEAKY_ENV_VARS` and any `AWS_ENDPOINT_URL_<SERVICE>` in the target environment.
        """
        no_proxy = ",".join(
            part for part in (os.environ.get("NO_PROXY", ""), "127.0.0.1,localhost") if part
        )
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_CONFIG_FILE": f"{_NOWHERE}/config",
            "AWS_SHARED_CREDENTIALS_FILE": f"{_NOWHERE}/credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }

    # -- observation and faults --------------------------------------------------------------

    @property
    def calls(self) -> Counter[str]:
        """A snapshot of requests per "service.Operation" since the last reset."""
        with self._lock:
            return Counter(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def throttle(self, operation: str, times: int) -> None:
        """The next `times` requests of `operation` ("monitoring.GetMetricData") are throttled."""
        self._add_faults(operation, times, _Fault(None, 400, "Rate exceeded"))

    def fail(
        self,
        operation: str,
        times: int,
        code: str = "AccessDeniedException",
        status: int = 400,
        *,
        after: int = 0,
    ) -> None:
        """The next `times` requests of `operation` fail with `code` before reaching moto;
        with `after`, only once that many requests of it went through first."""
        service, _, action = operation.partition(".")
        message = (
            f"User: arn:aws:iam::{ACCOUNT_ID}:user/testing is not authorized to perform: "
            f"{_IAM_PREFIX.get(service, service)}:{action}"
            if "denied" in code.lower()
            else f"{code} (injected by AwsDevServer)"
        )
        self._add_faults(operation, times, _Fault(code, status, message), after=after)

    def fail_after_applying(
        self,
        operation: str,
        times: int = 1,
        code: str = "InternalFailure",
        status: int = 500,
    ) -> None:
        """The next `times` requests of `operation` take effect in moto, then are answered with
        `code` and `status` (a 5xx by default, which botocore retries): a call that succeeded
        but whose answer was lost, so the retry meets the state the first call left."""
        message = f"{code} (injected by AwsDevServer after the request was applied)"
        self._add_faults(operation, times, _Fault(code, status, message, apply=True))

    def _add_faults(self, operation: str, times: int, fault: _Fault, *, after: int = 0) -> None:
        if "." not in operation:
            raise ValueError(f"operation must look like 'service.Operation', got {operation!r}")
        with self._lock:
            self._faults.setdefault(operation, deque()).extend([None] * after + [fault] * times)

    def add_cloudtrail_event(
        self,
        *,
        region: str,
        event_name: str,
        resource_name: str,
        at: datetime,
        username: str = "someone",
        resource_type: str = NOTEBOOK_RESOURCE_TYPE,
        event_source: str = "sagemaker.amazonaws.com",
        read_only: bool = False,
        request_parameters: Mapping[str, Any] | None = None,
    ) -> str:
        """Record an event for LookupEvents in `region`; returns its EventId."""
        require_aware(at, "at")
        if request_parameters is None:
            request_parameters = (
                {"notebookInstanceName": resource_name}
                if resource_type == NOTEBOOK_RESOURCE_TYPE
                else {}
            )
        with self._lock:
            self._seq += 1
            event = _TrailEvent(
                seq=self._seq,
                event_id=str(uuid.uuid4()),
                region=region,
                event_name=event_name,
                event_source=event_source,
                resource_type=resource_type,
                resource_name=resource_name,
                at=at.astimezone(UTC),
                username=username,
                read_only=read_only,
                request_parameters=dict(request_parameters),
            )
            self._events.append(event)
        return event.event_id

    def reset(self) -> None:
        """moto's own reset (every backend) plus events, call counts and pending faults."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with opener.open(request, timeout=30) as response:
            response.read()
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._events.clear()

    # -- the middleware ----------------------------------------------------------------------

    def _middleware(self, app: WsgiApp) -> WsgiApp:
        def middleware(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            if environ.get("PATH_INFO", "").startswith("/moto-api"):
                return app(environ, start_response)
            call = _identify(environ)
            with self._lock:
                self._calls[call.key] += 1
                pending = self._faults.get(call.key)
                fault = pending.popleft() if pending else None
            if fault is not None:
                if fault.apply:
                    _apply_and_discard(app, environ)
                code, status = fault.code, fault.status
                if code is None:
                    code, status = _throttling_code(call)
                return _respond(
                    start_response, status, *_error_response(call, code, fault.message, status)
                )
            handler = self._json_handlers.get(environ.get("HTTP_X_AMZ_TARGET", ""))
            if handler is not None and call.protocol == "json":
                return self._answer_json(handler, call, environ, start_response)
            return app(environ, start_response)

        return middleware

    @property
    def _json_handlers(self) -> dict[str, _JsonHandler]:
        return {_CLOUDTRAIL_LOOKUP: self._lookup, _LIST_METRICS: _list_metrics}

    def _answer_json(
        self,
        handler: _JsonHandler,
        call: _Call,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        try:
            raw = _read_body(environ)
            payload = handler(call, environ, _json_object(raw))
        except _ApiError as exc:
            return _respond(
                start_response,
                exc.status,
                *_error_response(call, exc.code, exc.message, exc.status),
            )
        except ValueError as exc:
            return _respond(
                start_response, 400, *_error_response(call, "SerializationException", str(exc), 400)
            )
        body = json.dumps(payload).encode()
        headers = [
            ("Content-Type", f"application/x-amz-json-{call.json_version}"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Length", str(len(body))),
        ]
        return _respond(start_response, 200, body, headers)

    def _lookup(
        self, call: _Call, environ: dict[str, Any], params: dict[str, Any]
    ) -> dict[str, Any]:
        region = call.region
        attributes = params.get("LookupAttributes") or []
        if len(attributes) > 1:
            raise _ApiError(
                "InvalidLookupAttributesException",
                "You can specify only one lookup attribute in a LookupEvents request.",
            )
        attribute: tuple[str, str] | None = None
        if attributes:
            key = attributes[0].get("AttributeKey", "")
            if key not in _LOOKUP_KEYS:
                raise _ApiError(
                    "InvalidLookupAttributesException",
                    f"Lookup attribute key {key!r} is not valid.",
                )
            attribute = (key, str(attributes[0].get("AttributeValue", "")))
        start = _epoch(params.get("StartTime"))
        end = _epoch(params.get("EndTime"))
        if start is not None and end is not None and start > end:
            raise _ApiError(
                "InvalidTimeRangeException", "Start time must be earlier than or equal to end time."
            )
        max_results = params.get("MaxResults", 50)
        if not isinstance(max_results, int) or not 1 <= max_results <= 50:
            raise _ApiError(
                "InvalidMaxResultsException", "MaxResults must be a number between 1 and 50."
            )
        if params.get("EventCategory") not in (None, "insight"):
            raise _ApiError("InvalidEventCategoryException", "EventCategory is not valid.")
        fingerprint = hashlib.sha256(
            json.dumps([region, attribute, start, end, params.get("EventCategory")]).encode()
        ).hexdigest()[:16]
        offset = 0
        if params.get("NextToken"):
            offset = _decode_token(str(params["NextToken"]), fingerprint)

        with self._lock:
            events = [
                e
                for e in self._events
                if e.region == region
                and (attribute is None or e.attribute(attribute[0]) == attribute[1])
                and (start is None or e.at.timestamp() >= start)
                and (end is None or e.at.timestamp() <= end)
            ]
        if params.get("EventCategory") == "insight":
            events = []
        events.sort(key=lambda e: (e.at, e.seq), reverse=True)
        page = events[offset : offset + max_results]
        result: dict[str, Any] = {"Events": [e.to_api() for e in page]}
        if offset + max_results < len(events):
            result["NextToken"] = _encode_token(offset + max_results, fingerprint)
        return result


_JsonHandler = Callable[[_Call, dict[str, Any], dict[str, Any]], dict[str, Any]]


def _account_of(environ: dict[str, Any]) -> str:
    """The account moto files a request under (same precedence as moto's own responses)."""
    if os.environ.get("MOTO_ACCOUNT_ID"):
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return str(environ["HTTP_X_MOTO_ACCOUNT_ID"])
    match = re.search(r"Credential=([^/,\s]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return ACCOUNT_ID
    from moto.iam.models import get_account_id_from

    return get_account_id_from(match.group(1))


def _list_metrics(call: _Call, environ: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """ListMetrics over moto's stored datapoints, one entry per distinct series.

    moto's own ListMetrics returns one entry per *datapoint* for metrics with two or more
    dimensions (so call counts would grow with history) and is quadratic in the datapoints.
    Here a series is (namespace, name, set of dimensions); its dimensions keep the order they
    were first published in (moto's GetMetricData only matches dimensions in that order).
    RecentlyActive=PT3H is honoured. Like real CloudWatch, a series without a datapoint in the
    past two weeks is not listed ("ListMetrics doesn't return information about metrics if
    those metrics haven't reported data in the past two weeks. To retrieve those metrics, use
    GetMetricData or GetMetricStatistics", CloudWatch API reference, ListMetrics), though
    GetMetricData still reads it. "Now" is the process clock, so time travel moves the window.
    """
    from moto.cloudwatch.models import cloudwatch_backends

    namespace = params.get("Namespace")
    metric_name = params.get("MetricName")
    wanted = [(str(d.get("Name")), d.get("Value")) for d in params.get("Dimensions") or []]
    now = datetime.now(UTC)
    recent_since = now - LIST_METRICS_WINDOW
    if params.get("RecentlyActive") == "PT3H":
        recent_since = now - timedelta(hours=3)
    backend = cloudwatch_backends[_account_of(environ)][call.region]
    series: dict[tuple[str, str, frozenset[tuple[str, str]]], dict[str, Any]] = {}
    for datum in list(backend.get_all_metrics()):
        if namespace and datum.namespace != namespace:
            continue
        if metric_name and datum.name != metric_name:
            continue
        dims = [(str(d.name), str(d.value)) for d in datum.dimensions]
        if not all(_dimension_matches(dims, name, value) for name, value in wanted):
            continue
        stamp = datum.timestamp
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        if stamp < recent_since:
            continue
        key = (datum.namespace, datum.name, frozenset(dims))
        if key not in series:
            series[key] = {
                "Namespace": datum.namespace,
                "MetricName": datum.name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in dims],
            }
    metrics = list(series.values())
    query = [call.region, namespace, metric_name, wanted, params.get("RecentlyActive")]
    fingerprint = hashlib.sha256(json.dumps(query).encode()).hexdigest()[:16]
    offset = 0
    if params.get("NextToken"):
        offset = _decode_token(str(params["NextToken"]), fingerprint, "InvalidParameterValue")
    result: dict[str, Any] = {"Metrics": metrics[offset : offset + _LIST_METRICS_PAGE]}
    if offset + _LIST_METRICS_PAGE < len(metrics):
        result["NextToken"] = _encode_token(offset + _LIST_METRICS_PAGE, fingerprint)
    return result


def _dimension_matches(dims: list[tuple[str, str]], name: str, value: Any) -> bool:
    if value is None:
        return any(n == name for n, _ in dims)
    return (name, str(value)) in dims


def _json_object(raw: bytes) -> dict[str, Any]:
    params = json.loads(raw or b"{}")
    if not isinstance(params, dict):
        raise _ApiError("SerializationException", "request body is not a JSON object")
    return params


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _ApiError("InvalidTimeRangeException", f"{value!r} is not a timestamp") from None


def _encode_token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([offset, fingerprint]).encode()).decode()


def _decode_token(token: str, fingerprint: str, code: str = "InvalidNextTokenException") -> int:
    try:
        offset, seen = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise _ApiError(code, "Invalid NextToken.") from None
    if seen != fingerprint or not isinstance(offset, int) or offset < 0:
        raise _ApiError(
            code,
            "The NextToken does not match the parameters of the previous call.",
        )
    return offset


def _apply_and_discard(app: WsgiApp, environ: dict[str, Any]) -> None:
    """Run the request through `app` and throw its answer away."""
    _read_body(environ)  # buffered, so the app can read it

    def ignore(status: str, headers: list[Any], exc_info: Any = None) -> Callable[[bytes], Any]:
        return lambda data: None

    answer = app(environ, ignore)
    try:
        for _chunk in answer:
            pass
    finally:
        close = getattr(answer, "close", None)
        if close is not None:
            close()


def _respond(
    start_response: StartResponse, status: int, body: bytes, headers: list[Any]
) -> list[bytes]:
    start_response(f"{status} {_STATUS_TEXT.get(status, 'Error')}", headers)
    return [body]


def _quiet_handler() -> type[Any]:
    """moto's request handler without werkzeug's per-request log line."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return None

    return QuietHandler
