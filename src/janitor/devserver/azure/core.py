"""The core of the local Azure Resource Manager: TLS, the managed-identity token endpoint, bearer
authentication, routing, faults, call counts and long-running operations.

Per-service modules (`compute.py`, `monitor.py`, and e.g. an `ml.py`) add their routes with
`ArmDevServer.route` and use the helpers here; see the package docstring for the API.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import re
import secrets
import ssl
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from janitor.devserver.background import BackgroundServer

TOKEN_PATH = "/msi/token"
IDENTITY_API_VERSION = "2019-08-01"
TOKEN_LIFETIME = timedelta(hours=24)
_JSON = "application/json; charset=utf-8"


# -- a test certificate authority ---------------------------------------------------------------


@dataclass(frozen=True)
class TestCa:
    """A CA generated for tests and the server certificate it signed (127.0.0.1, localhost).

    Trust `ca_file` through `REQUESTS_CA_BUNDLE` (requests, which azure-core uses) and
    `SSL_CERT_FILE` (Python's default SSL context)."""

    __test__ = False  # not a pytest test class

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def generate(cls, directory: str | Path) -> TestCa:
        """A new CA and server certificate, written as PEM files into `directory`. Needs
        `cryptography`."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC) - timedelta(days=1)
        # Long validity: tests travel the clock years ahead, and the TLS check reads it.
        until = now + timedelta(days=3650)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "janitor test CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        ca_file = folder / "test-ca.pem"
        cert_file = folder / "server.pem"
        key_file = folder / "server-key.pem"
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cls(ca_file, cert_file, key_file)


# -- requests, replies, errors -------------------------------------------------------------------


class ArmError(Exception):
    """An error answered in ARM's shape: {"error": {"code", "message"}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = tuple(headers)

    def reply(self) -> Reply:
        body = {"error": {"code": self.code, "message": self.message}}
        return Reply(self.status, json.dumps(body).encode(), self.headers)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = _JSON


def ok(payload: Mapping[str, Any] | Sequence[Any], status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload).encode())


@dataclass(frozen=True, slots=True)
class Request:
    """What a route handler gets: the path's named groups, the query (last value of each
    parameter, names as sent), the JSON body ({} when empty) and the headers (lower-case)."""

    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    headers: Mapping[str, str]

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A query parameter, its name matched case-insensitively (ARM's rule)."""
        lowered = name.lower()
        for key, value in self.query.items():
            if key.lower() == lowered:
                return value
        return default


Handler = Callable[[Request], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str  # the REST operation id, e.g. "VirtualMachines_ListAll"
    handler: Handler


@dataclass
class _Fault:
    operation: str
    status: int
    remaining: int
    retry_after: int | None = None


@dataclass
class Operation:
    """An asynchronous operation: `InProgress` until polled `polls` times, then `Succeeded`
    (running `on_done`) or `Failed` (running `on_failed`, answering `error`)."""

    id: str
    path: str  # the Azure-AsyncOperation / Location path
    polls_left: int
    on_done: Callable[[], None]
    on_failed: Callable[[], None] | None
    error: tuple[str, str] | None  # (code, message) when it ends Failed
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    end: datetime | None = None

    @property
    def status(self) -> str:
        if self.end is None:
            return "InProgress"
        return "Failed" if self.error is not None else "Succeeded"


def stamp(moment: datetime) -> str:
    """ARM's times: ISO 8601 with fractional seconds and an offset."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now() -> datetime:
    return datetime.now(UTC)


class ArmDevServer(BackgroundServer[ThreadingHTTPServer]):
    """HTTPS on 127.0.0.1 with the managed-identity token endpoint, subscriptions, bearer
    authentication, faults, call counts and asynchronous operations; services add routes."""

    def __init__(
        self,
        *,
        tls: TestCa | None = None,
        port: int = 0,
        operation_polls: int = 1,
        retry_after: int = 1,
    ) -> None:
        """`operation_polls`: how many polls of an asynchronous operation answer `InProgress`
        (at least one). `retry_after`: the `Retry-After` every 202 carries."""
        super().__init__()
        if operation_polls < 1:
            raise ValueError("operation_polls must be >= 1")
        self._tls = tls
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._port = port
        self.operation_polls = operation_polls
        self.retry_after = retry_after
        self.lock = threading.RLock()
        self.identity_header = secrets.token_urlsafe(16)
        self.tenant_id = str(uuid.uuid4())
        self._tokens: dict[str, str] = {}  # token -> resource (audience)
        self._subscriptions: dict[str, dict[str, Any]] = {}
        self._denied: set[str] = set()
        self._faults: list[_Fault] = []
        self._calls: Counter[str] = Counter()
        self._routes: list[Route] = []
        self._operations: dict[str, Operation] = {}
        self.route("GET", TOKEN_PATH, "ManagedIdentity_GetToken", self._token, auth=False)
        self.route("GET", "/subscriptions", "Subscriptions_List", self._subscriptions_list)
        self.route(
            "GET",
            r"/subscriptions/(?P<subscription>[^/]+)",
            "Subscriptions_Get",
            self._subscription_get,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        if self._tls is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="janitor-azure-ca-")
            self._tls = TestCa.generate(self._tmp.name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._serve(server, "azure-devserver", poll_interval=0.02)

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._tls = None

    @property
    def url(self) -> str:
        """The Resource Manager base URL (the value of `JANITOR_AZURE_ARM_ENDPOINT`)."""
        return f"https://127.0.0.1:{self._port_in_use()}"

    @property
    def ca_file(self) -> Path:
        """The test CA's PEM file, for `REQUESTS_CA_BUNDLE` and `SSL_CERT_FILE`."""
        if self._tls is None:
            raise RuntimeError("the server is not started")
        return self._tls.ca_file

    @property
    def identity_endpoint(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    def env(self) -> dict[str, str]:
        """The environment that points the real `DefaultAzureCredential` (App Service managed
        identity) and janitor at this server, and trusts its certificate."""
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "REQUESTS_CA_BUNDLE": str(self.ca_file),
            "SSL_CERT_FILE": str(self.ca_file),
            "JANITOR_AZURE_ARM_ENDPOINT": self.url,
        }

    # -- routes (the extension API) ------------------------------------------------------------

    def route(
        self, method: str, pattern: str, operation: str, handler: Handler, *, auth: bool = True
    ) -> None:
        """Answer `method` on paths matching `pattern` (a regex over the unquoted path, matched
        whole, case-insensitively as ARM matches) with `handler`. Each request is counted under
        `operation` and passes the bearer check (unless `auth=False`) and the faults first. A
        group named `subscription` subjects the route to `deny_subscription`. Routes added
        later win over earlier ones for the same path."""
        compiled = re.compile(pattern + "$", re.IGNORECASE)
        wrapped = handler if auth else _no_auth(handler)
        self._routes.insert(0, Route(method.upper(), compiled, operation, wrapped))

    def start_operation(
        self,
        subscription: str,
        namespace: str,
        location: str,
        on_done: Callable[[], None],
        *,
        on_failed: Callable[[], None] | None = None,
        error: tuple[str, str] | None = None,
    ) -> Reply:
        """Accept an asynchronous operation: a 202 with `Azure-AsyncOperation`, `Location` and
        `Retry-After`, as ARM answers. The status is `InProgress` for `operation_polls` polls of
        the Azure-AsyncOperation URL, then `Succeeded` (`on_done` runs) or, with `error`
        (code, message), `Failed` (`on_failed` runs). The Location URL (`monitor=true`) answers
        202 until then, and 200 with no body once it succeeded."""
        op_id = str(uuid.uuid4())
        path = (
            f"/subscriptions/{subscription}/providers/{namespace}/locations/{location}/"
            f"operations/{op_id}"
        )
        with self.lock:
            self._operations[path.lower()] = Operation(
                op_id, path, self.operation_polls, on_done, on_failed, error
            )
        return Reply(202, b"", self._operation_headers(path))

    def _operation_headers(self, path: str) -> tuple[tuple[str, str], ...]:
        p = secrets.token_hex(8)
        base = f"{self.url}{path}"
        return (
            ("Azure-AsyncNotification", "Enabled"),
            ("Azure-AsyncOperation", f"{base}?{urlencode({'p': p, 'api-version': '2024-07-01'})}"),
            (
                "Location",
                f"{base}?{urlencode({'p': p, 'monitor': 'true', 'api-version': '2024-07-01'})}",
            ),
            ("Retry-After", str(self.retry_after)),
        )

    # -- credentials ---------------------------------------------------------------------------

    def issue_token(self, resource: str | None = None) -> str:
        """A bearer token the server accepts (what the token endpoint hands out)."""
        token = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(32)
        with self.lock:
            self._tokens[token] = resource or self.url
        return token

    def token_audiences(self) -> list[str]:
        """The `resource` of every token issued, in order (what the client asked for)."""
        with self.lock:
            return list(self._tokens.values())

    # -- subscriptions -------------------------------------------------------------------------

    def add_subscription(self, subscription_id: str, display_name: str | None = None) -> None:
        """A subscription the credential can list (Subscriptions - List)."""
        with self.lock:
            self._subscriptions[subscription_id.lower()] = {
                "id": f"/subscriptions/{subscription_id}",
                "authorizationSource": "RoleBased",
                "managedByTenants": [],
                "subscriptionId": subscription_id,
                "tenantId": self.tenant_id,
                "displayName": display_name or f"subscription {subscription_id[:8]}",
                "state": "Enabled",
                "subscriptionPolicies": {
                    "locationPlacementId": "Public_2014-09-01",
                    "quotaId": "PayAsYouGo_2014-09-01",
                    "spendingLimit": "Off",
                },
            }

    def has_subscription(self, subscription_id: str) -> bool:
        with self.lock:
            return subscription_id.lower() in self._subscriptions

    # -- observation and faults ----------------------------------------------------------------

    @property
    def calls(self) -> Counter[str]:
        """Requests per REST operation id (pages, polls and faulted requests included), e.g.
        `VirtualMachines_ListAll`, `Metrics_ListAtSubscriptionScope`, `AsyncOperation_Get`."""
        with self.lock:
            return Counter(self._calls)

    def reset_calls(self) -> None:
        with self.lock:
            self._calls.clear()

    def deny_subscription(self, subscription_id: str) -> None:
        """Every call under the subscription answers 403 `AuthorizationFailed`; it stays listed
        (a reader role on the subscription itself, none on its resources)."""
        with self.lock:
            self._denied.add(subscription_id.lower())

    def rate_limit(self, operation: str, *, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `operation` answer 429 with `Retry-After`."""
        with self.lock:
            self._faults.append(_Fault(operation, 429, times, retry_after))

    def outage(self, operation: str, *, times: int = 1, status: int = 503) -> None:
        """The next `times` calls of `operation` answer `status` (a 5xx)."""
        with self.lock:
            self._faults.append(_Fault(operation, status, times))

    # -- dispatch ------------------------------------------------------------------------------

    def dispatch(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        path, _, query_string = raw_path.partition("?")
        path = unquote(path).rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        try:
            if method == "GET":
                with self.lock:
                    op = self._operations.get(path.lower())
                if op is not None:
                    monitor = query.get("monitor") == "true"
                    name = "AsyncOperation_Location" if monitor else "AsyncOperation_Get"
                    self._count(name)
                    self._authenticate(headers)
                    return self._poll(op, monitor)
            for route in self._routes:
                match = route.pattern.match(path)
                if match is None or route.method != method:
                    continue
                self._count(route.operation)
                request = Request(
                    method,
                    path,
                    {k: v for k, v in match.groupdict().items() if v is not None},
                    query,
                    json.loads(body) if body.strip() else {},
                    headers,
                )
                if not getattr(route.handler, "_no_auth", False):
                    self._authenticate(headers)
                    self._check_faults(route.operation, request.params.get("subscription"))
                return route.handler(request)
            raise ArmError(  # noqa: TRY301 - answered below like every other ARM error
                404,
                "InvalidResourceType" if path.startswith("/subscriptions/") else "NotFound",
                f"The resource type could not be found for path '{path}'.",
            )
        except ArmError as exc:
            return exc.reply()
        except (ValueError, KeyError, TypeError) as exc:
            return ArmError(400, "BadRequest", f"Invalid request: {exc}").reply()

    def _count(self, operation: str) -> int:
        with self.lock:
            self._calls[operation] += 1
            return self._calls[operation]

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                headers=(("WWW-Authenticate", 'Bearer error="invalid_token"'),),
            )
        with self.lock:
            known = token in self._tokens
        if not known:
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                headers=(("WWW-Authenticate", 'Bearer error="invalid_token"'),),
            )

    def _check_faults(self, operation: str, subscription: str | None) -> None:
        with self.lock:
            if subscription is not None and subscription.lower() in self._denied:
                raise ArmError(
                    403,
                    "AuthorizationFailed",
                    f"The client '{self.client_id}' with object id '{self.client_id}' does not "
                    f"have authorization to perform action for operation '{operation}' over "
                    f"scope '/subscriptions/{subscription}' or the scope is invalid. If access "
                    "was recently granted, please refresh your credentials.",
                )
            for fault in self._faults:
                if fault.operation != operation or fault.remaining <= 0:
                    continue
                fault.remaining -= 1
                if fault.status == 429:
                    raise ArmError(
                        429,
                        "TooManyRequests",
                        "The request is being throttled as the limit has been reached for "
                        "operation type - Read_ObservationWindow_00:05:00.",
                        headers=(("Retry-After", str(fault.retry_after or 1)),),
                    )
                raise ArmError(
                    fault.status,
                    "ServiceUnavailable" if fault.status == 503 else "InternalServerError",
                    "The service is temporarily unavailable. Please try again later."
                    if fault.status == 503
                    else "An internal server error occurred.",
                )

    @property
    def client_id(self) -> str:
        return "7d3a2c1b-0000-4000-8000-00000000cafe"

    def _poll(self, op: Operation, monitor: bool) -> Reply:
        with self.lock:
            if op.end is None:
                if op.polls_left > 0:
                    if not monitor:
                        op.polls_left -= 1
                else:
                    op.end = now()
                    if op.error is None:
                        op.on_done()
                    elif op.on_failed is not None:
                        op.on_failed()
            status = op.status
        if monitor:
            if status == "InProgress":
                return Reply(202, b"", self._operation_headers(op.path)[2:])
            if status == "Failed":
                assert op.error is not None
                return ArmError(409, op.error[0], op.error[1]).reply()
            return Reply(200, b"")
        payload: dict[str, Any] = {"startTime": stamp(op.start), "status": status, "name": op.id}
        headers: tuple[tuple[str, str], ...] = ()
        if op.end is not None:
            payload = {
                "startTime": stamp(op.start),
                "endTime": stamp(op.end),
                "status": status,
                "name": op.id,
            }
            if op.error is not None:
                payload["error"] = {"code": op.error[0], "message": op.error[1]}
        else:
            headers = (("Retry-After", str(self.retry_after)),)
        return Reply(200, json.dumps(payload).encode(), headers)

    # -- built-in routes -----------------------------------------------------------------------

    def _token(self, request: Request) -> Reply:
        if request.headers.get("x-identity-header") != self.identity_header:
            return ok({"statusCode": 401, "message": "Unauthorized: bad X-IDENTITY-HEADER"}, 401)
        if request.arg("api-version") != IDENTITY_API_VERSION:
            return ok({"statusCode": 400, "message": "Unsupported api-version"}, 400)
        resource = request.arg("resource") or ""
        if not resource:
            return ok({"statusCode": 400, "message": "resource is required"}, 400)
        expires = int((now() + TOKEN_LIFETIME).timestamp())
        return ok(
            {
                "access_token": self.issue_token(resource),
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": self.client_id,
            }
        )

    def _subscriptions_list(self, request: Request) -> Reply:
        with self.lock:
            rows = [dict(s) for s in self._subscriptions.values()]
        return ok({"value": rows, "count": {"type": "Total", "value": len(rows)}})

    def _subscription_get(self, request: Request) -> Reply:
        with self.lock:
            row = self._subscriptions.get(request.params["subscription"].lower())
        if row is None:
            raise ArmError(
                404,
                "SubscriptionNotFound",
                f"The subscription '{request.params['subscription']}' could not be found.",
            )
        return ok(dict(row))


def _no_auth(handler: Handler) -> Handler:
    def wrapped(request: Request) -> Reply:
        return handler(request)

    wrapped._no_auth = True  # type: ignore[attr-defined]
    return wrapped


def page(
    server: ArmDevServer, request: Request, rows: list[dict[str, Any]], size: int
) -> dict[str, Any]:
    """One page of a list: `value`, and `nextLink` (the same URL with `$skiptoken`) when more
    rows follow, as ARM pages."""
    start = int(request.arg("$skiptoken") or 0)
    chunk = rows[start : start + size]
    payload: dict[str, Any] = {"value": chunk}
    if start + size < len(rows):
        query = {k: v for k, v in request.query.items() if k.lower() != "$skiptoken"}
        query["$skiptoken"] = str(start + size)
        payload["nextLink"] = f"{server.url}{request.path}?{urlencode(query)}"
    return payload


def day_start(day: _dt.date) -> datetime:
    return datetime.combine(day, _dt.time(0), UTC)


# -- HTTP plumbing -------------------------------------------------------------------------------


def _handler_for(dev: ArmDevServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "janitor-azure-devserver"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            body = self.rfile.read(length) if length > 0 else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = dev.dispatch(method, self.path, headers, body)
            self.send_response(reply.status)
            if reply.body:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
