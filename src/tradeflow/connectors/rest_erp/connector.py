"""Generic REST ERP/CRM connector: base URL, auth and field mapping configured per instance.

It speaks the common shape of document APIs: a collection per document type
(`POST` creates, `GET ?field=value` searches, `GET /{id}` reads, `PATCH
/{id}` with `If-Match` updates), a version marker on each record (a
`version` field, an `ETag`, or `updated_at`), and 429/`Retry-After` for
back-pressure. Everything remote-specific is configuration:

    {"base_url": "https://erp.example.com/api/v1", "auth": "bearer", "token": "…",
     "reference_field": "reference",
     "objects": {"invoice": {"path": "/invoices",
                             "fields": {"number": "number", "total": "total_decimal"},
                             "ownership": {"notes": "theirs"}}}}

`fields` maps *their* field name to one of *our* document's fields (see
`integrations.documents` for what each document offers). Unconfigured
objects use `DEFAULT_OBJECTS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from tradeflow.integrations.plugins import (
    DEFAULT_PULL_CRON,
    Capability,
    ChangeBatch,
    ConnectorConfig,
    ConnectorError,
    DocumentConnector,
    ObjectType,
    Ownership,
    RateLimited,
    RemoteChange,
    RemoteRecord,
    RemoteRejected,
    RemoteTimeout,
    RemoteUnavailable,
    VersionMismatch,
)


class ObjectMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Collection path under base_url, e.g. `/invoices`.")
    fields: dict[str, str] = Field(description="Their field → our document field.")
    ownership: dict[str, Ownership] = Field(
        default_factory=dict,
        description="Per their field: `ours`, `theirs` or `shared` (the default_owner if absent).",
    )
    default_owner: Ownership = "shared"


DEFAULT_OBJECTS: dict[ObjectType, ObjectMapping] = {
    # The ERP's accounts department keeps billing address, tax id, credit limit and payment
    # terms (ours until the record exists there, theirs after); the name is shared.
    ObjectType.CUSTOMER: ObjectMapping(
        path="/customers",
        fields={
            "name": "name",
            "currency": "currency",
            "payment_terms_days": "payment_terms_days",
            "tax_id": "tax_id",
            "credit_limit": "credit_limit",
            "billing_address": "billing_address",
        },
        ownership={
            "currency": "ours",
            "payment_terms_days": "theirs",
            "tax_id": "theirs",
            "credit_limit": "theirs",
            "billing_address": "theirs",
        },
    ),
    ObjectType.INVOICE: ObjectMapping(
        path="/invoices",
        fields={
            "number": "number",
            "customer": "customer_external_id",
            "currency": "currency",
            "total": "total",
            "amount_paid": "amount_paid",
            "status": "status",
            "due_date": "due_date",
        },
        ownership={
            "number": "ours",
            "customer": "ours",
            "currency": "ours",
            "total": "ours",
            "amount_paid": "ours",
            "status": "shared",
        },
    ),
    ObjectType.PAYMENT: ObjectMapping(
        path="/payments",
        fields={
            "invoice": "invoice_external_id",
            "amount": "amount",
            "currency": "currency",
            "received_at": "captured_at",
        },
        default_owner="ours",
    ),
    ObjectType.CREDIT_NOTE: ObjectMapping(
        path="/credit_notes",
        fields={
            "invoice": "invoice_external_id",
            "payment": "payment_external_id",
            "amount": "amount",
            "currency": "currency",
        },
        default_owner="ours",
    ),
}


class RestErpConfig(ConnectorConfig):
    base_url: str = Field(description="Root of the ERP's REST API.", max_length=500)
    auth: Literal["bearer", "basic", "header", "none"] = "bearer"
    token: SecretStr | None = Field(default=None, description="Bearer token or header value.")
    username: str | None = None
    password: SecretStr | None = None
    header_name: str = Field(default="X-Api-Key", description="For `auth: header`.")
    reference_field: str = Field(
        default="reference", description="Their field holding our id; searched before creating."
    )
    version_field: str = Field(default="version", description="Their record's version marker.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    settle_seconds: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="After a create went unanswered, wait this long before looking it up "
        "(the ERP may still be processing it). Default: twice `timeout_seconds`.",
    )
    objects: dict[ObjectType, ObjectMapping] = Field(default_factory=dict)
    pull_objects: list[ObjectType] = Field(
        default_factory=lambda: [ObjectType.CUSTOMER],
        description="Document types whose remote changes are pulled (empty: no pulling).",
    )
    pull_cron: str = Field(
        default=DEFAULT_PULL_CRON,
        max_length=100,
        description="When the scheduled pull runs (cron, UTC; six fields: seconds last).",
    )
    pull_create_unknown: bool = Field(
        default=False,
        description="Create our document for a pulled record we have no mapping for "
        "(customers only); otherwise it is reported.",
    )
    pull_page_size: int = Field(default=100, ge=1, le=1000)
    updated_field: str = Field(
        default="updated_at", description="Their record's last-change time (the pull watermark)."
    )

    @field_validator("pull_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError("not a valid cron expression")
        return value

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class RestErpConnector(DocumentConnector):
    slug: ClassVar[str] = "rest_erp"
    title: ClassVar[str] = "Generic REST ERP/CRM"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PUSH_CUSTOMERS,
            Capability.PUSH_INVOICES,
            Capability.PUSH_PAYMENTS,
            Capability.PUSH_CREDIT_NOTES,
            Capability.PULL_CHANGES,
        }
    )
    config_model: ClassVar[type[ConnectorConfig]] = RestErpConfig
    event_types: ClassVar[tuple[str, ...]] = (
        "customer.created",
        "customer.updated",
        "invoice.issued",
        "order.partially_paid",
        "order.paid",
        "order.refunded",
        "order.cancelled",
        "payment.captured",
        "refund.succeeded",
    )

    config: RestErpConfig

    def __init__(self, config: ConnectorConfig) -> None:
        assert isinstance(config, RestErpConfig)
        super().__init__(config)
        self._client: httpx.AsyncClient | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.config.base_url,
                headers=self._auth_headers(),
                auth=self._basic_auth(),
                timeout=self.config.timeout_seconds,
                follow_redirects=False,
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def check(self) -> None:
        await self._request("GET", self._path(ObjectType.INVOICE), params={"limit": "1"})

    def _auth_headers(self) -> dict[str, str]:
        token = self.config.token.get_secret_value() if self.config.token else ""
        if self.config.auth == "bearer":
            return {"Authorization": f"Bearer {token}"}
        if self.config.auth == "header":
            return {self.config.header_name: token}
        return {}

    def _basic_auth(self) -> httpx.BasicAuth | None:
        if self.config.auth != "basic":
            return None
        password = self.config.password.get_secret_value() if self.config.password else ""
        return httpx.BasicAuth(self.config.username or "", password)

    # -- mapping -------------------------------------------------------------------------------
    def mapping(self, object_type: ObjectType) -> ObjectMapping:
        return self.config.objects.get(object_type) or DEFAULT_OBJECTS[object_type]

    def _path(self, object_type: ObjectType) -> str:
        return self.mapping(object_type).path

    def map_out(self, object_type: ObjectType, document: dict[str, Any]) -> dict[str, Any]:
        return {
            theirs: document.get(ours) for theirs, ours in self.mapping(object_type).fields.items()
        }

    def reference_name(self) -> str:
        return self.config.reference_field

    def settle_seconds(self) -> float:
        if self.config.settle_seconds is not None:
            return self.config.settle_seconds
        return 2 * self.config.timeout_seconds

    def remote_field(self, object_type: ObjectType, our_field: str) -> str | None:
        for theirs, ours in self.mapping(object_type).fields.items():
            if ours == our_field:
                return theirs
        return None

    def local_field(self, object_type: ObjectType, remote_field: str) -> str | None:
        return self.mapping(object_type).fields.get(remote_field)

    def supports_pull(self) -> bool:
        return bool(self.config.pull_objects)

    def pull_cron(self) -> str:
        return self.config.pull_cron

    def pull_creates_unknown(self) -> bool:
        return self.config.pull_create_unknown

    def ownership(self, object_type: ObjectType, remote_field: str) -> Ownership:
        mapping = self.mapping(object_type)
        return mapping.ownership.get(remote_field, mapping.default_owner)

    def _record(self, data: dict[str, Any], etag: str | None) -> RemoteRecord:
        version = data.get(self.config.version_field)
        if version is None:
            version = etag.strip('"') if etag else data.get("updated_at", "")
        return RemoteRecord(external_id=str(data["id"]), version=str(version), fields=data)

    # -- protocol ------------------------------------------------------------------------------
    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        if self._client is None:
            await self.open()
        assert self._client is not None
        try:
            response = await self._client.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise RemoteTimeout(
                f"{method} {url}: no answer in {self.config.timeout_seconds} s"
            ) from exc
        except httpx.TransportError as exc:
            raise RemoteUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        code = response.status_code
        if code < 400:
            return response
        body = response.text[:300]
        if code == 429:
            raise RateLimited(f"{method} {url}: 429 {body}", retry_after=_retry_after(response))
        if code == 412:
            raise VersionMismatch(f"{method} {url}: the record changed", status_code=412)
        if code >= 500 or code in (408, 409):
            raise RemoteUnavailable(f"{method} {url}: {code} {body}", status_code=code)
        if code == 404:
            raise _NotFound(f"{method} {url}: 404", status_code=404)
        raise RemoteRejected(f"{method} {url}: {code} {body}", status_code=code)

    async def find_by_reference(
        self, object_type: ObjectType, reference: str
    ) -> list[RemoteRecord]:
        response = await self._request(
            "GET", self._path(object_type), params={self.config.reference_field: reference}
        )
        return [self._record(item, None) for item in _items(response.json())]

    async def fetch(self, object_type: ObjectType, external_id: str) -> RemoteRecord | None:
        try:
            response = await self._request("GET", f"{self._path(object_type)}/{external_id}")
        except _NotFound:
            return None
        return self._record(response.json(), response.headers.get("etag"))

    async def create(
        self, object_type: ObjectType, fields: dict[str, Any], *, reference: str
    ) -> RemoteRecord:
        body = {**fields, self.config.reference_field: reference}
        response = await self._request("POST", self._path(object_type), json=body)
        return self._record(response.json(), response.headers.get("etag"))

    async def update(
        self,
        object_type: ObjectType,
        external_id: str,
        changes: dict[str, Any],
        *,
        if_version: str | None,
    ) -> RemoteRecord:
        headers = {"If-Match": f'"{if_version}"'} if if_version is not None else {}
        response = await self._request(
            "PATCH", f"{self._path(object_type)}/{external_id}", json=changes, headers=headers
        )
        return self._record(response.json(), response.headers.get("etag"))

    async def list_all(self, object_type: ObjectType) -> list[RemoteRecord]:
        response = await self._request("GET", self._path(object_type))
        return [self._record(item, None) for item in _items(response.json())]

    async def pull_changes(self, cursor: str | None) -> ChangeBatch:
        """Records changed since the last pull, a page at a time, type after type.

        Speaks the common "changed since" listing: `GET {path}?updated_since=&cursor=&limit=`
        answering `{"items": [...], "next_cursor": ...}`. Our cursor keeps, per type, the
        newest `updated_at` already pulled and the ids pulled at exactly that time (the next
        pull asks from there, inclusive, and leaves those out, so a record changed in the
        same instant is not missed) and, mid-listing, the remote's own page cursor.
        """
        types = list(self.config.pull_objects)
        state = _PullState.load(cursor)
        current = state.type if state.type in types else types[0]
        page = state.page if state.type == current else None
        params = {"limit": str(self.config.pull_page_size)}
        since = state.since.get(current.value)
        # Records already pulled at exactly the watermark (it is inclusive): not again.
        edge = set(state.edge.get(current.value, []))
        if since:
            params["updated_since"] = since
        if page:
            params["cursor"] = page
        response = await self._request("GET", self._path(current), params=params)
        data = response.json()
        changes: list[RemoteChange] = []
        newest, newest_ids = since, set(edge)
        for item in _items(data):
            record = self._record(item, None)
            updated = item.get(self.config.updated_field)
            updated_text = None if updated is None else str(updated)
            if updated_text is not None and updated_text == since and record.external_id in edge:
                continue
            changes.append(
                RemoteChange(
                    object_type=current,
                    external_id=record.external_id,
                    version=record.version,
                    fields=record.fields,
                    updated_at=updated_text,
                )
            )
            if updated_text is None:
                continue
            if newest is None or _later(updated_text, newest):
                newest, newest_ids = updated_text, {record.external_id}
            elif updated_text == newest:
                newest_ids.add(record.external_id)
        if newest is not None:
            state.since[current.value] = newest
            state.edge[current.value] = sorted(newest_ids)
        next_page = data.get("next_cursor") if isinstance(data, dict) else None
        if next_page:
            return ChangeBatch(changes, state.dump(current, str(next_page)), more=True)
        position = types.index(current)
        if position + 1 < len(types):
            return ChangeBatch(changes, state.dump(types[position + 1], None), more=True)
        return ChangeBatch(changes, state.dump(None, None), more=False)


@dataclass
class _PullState:
    since: dict[str, str]  # type → newest `updated_at` pulled
    edge: dict[str, list[str]] = field(default_factory=dict)  # type → ids pulled at `since`
    type: ObjectType | None = None
    page: str | None = None

    @classmethod
    def load(cls, cursor: str | None) -> _PullState:
        if not cursor:
            return cls(since={})
        try:
            raw = json.loads(cursor)
            kind = raw.get("type")
            return cls(
                since={str(k): str(v) for k, v in dict(raw.get("since") or {}).items()},
                edge={str(k): [str(i) for i in v] for k, v in dict(raw.get("edge") or {}).items()},
                type=ObjectType(kind) if kind else None,
                page=raw.get("page"),
            )
        except (ValueError, TypeError, AttributeError):
            # A cursor of another shape (an older version): start over; applying is idempotent.
            return cls(since={})

    def dump(self, kind: ObjectType | None, page: str | None) -> str:
        body: dict[str, Any] = {"since": self.since, "edge": self.edge}
        if kind is not None:
            body["type"] = kind.value
        if page is not None:
            body["page"] = page
        return json.dumps(body, sort_keys=True)


def _later(a: str, b: str) -> bool:
    """`a` is after `b`, comparing as ISO times when both are, else as text."""
    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) > datetime.fromisoformat(
            b.replace("Z", "+00:00")
        )
    except ValueError:
        return a > b


class _NotFound(ConnectorError):
    pass


def _items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict)]
    if isinstance(data, dict):
        for key in ("items", "data", "results", "records"):
            if isinstance(data.get(key), list):
                return [d for d in data[key] if isinstance(d, dict)]
    raise RemoteRejected("the search answer is not a list of records")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
