"""Connector plugins: typed base classes per capability, loaded from entry points.

A connector is a class registered in the `tradeflow.connectors` entry-point
group (see `pyproject.toml`), so a third-party package adds one by declaring

    [project.entry-points."tradeflow.connectors"]
    my_erp = "my_package.connector:MyErpConnector"

Each plugin declares

* `slug` (the `kind` of an instance), `title`, the `capabilities` it offers;
* `config_model`, a Pydantic model whose `SecretStr` fields are secrets: the
  integrations service stores them encrypted at rest and never returns them;
* the methods of its base class. There are two shapes of remote system:
  `DocumentConnector` (an ERP/CRM/accounting API holding documents we push:
  find by our reference, fetch, create, update with a version check) and
  `JournalConnector` (a journal export such as a Beancount file). The
  generic sync engine (`integrations.sync`) does the hard parts — intent
  before the call, reconcile before retry, per-field ownership, conflicts —
  so plugins stay thin and only speak their remote's protocol.

A document connector that also reports what changed at the remote declares
`Capability.PULL_CHANGES` and implements `pull_changes(cursor)`; the pull
engine (`integrations.pull`) applies the changes under the same ownership
policy, stores the cursor only after a page is applied, and queues conflicts.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, NamedTuple

import structlog
from pydantic import BaseModel, ConfigDict, SecretStr

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "tradeflow.connectors"


class Capability(StrEnum):
    PUSH_CUSTOMERS = "push_customers"
    PUSH_INVOICES = "push_invoices"
    PUSH_PAYMENTS = "push_payments"
    PUSH_CREDIT_NOTES = "push_credit_notes"
    PULL_CHANGES = "pull_changes"
    EXPORT_JOURNAL = "export_journal"


class ObjectType(StrEnum):
    """The documents Tradeflow pushes to a document connector."""

    CUSTOMER = "customer"
    INVOICE = "invoice"
    PAYMENT = "payment"
    CREDIT_NOTE = "credit_note"


CAPABILITY_OF: dict[ObjectType, Capability] = {
    ObjectType.CUSTOMER: Capability.PUSH_CUSTOMERS,
    ObjectType.INVOICE: Capability.PUSH_INVOICES,
    ObjectType.PAYMENT: Capability.PUSH_PAYMENTS,
    ObjectType.CREDIT_NOTE: Capability.PUSH_CREDIT_NOTES,
}

Ownership = Literal["ours", "theirs", "shared"]


class ConnectorConfig(BaseModel):
    """Base of every plugin's configuration; `SecretStr` fields are encrypted at rest."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [
            name
            for name, info in cls.model_fields.items()
            if info.annotation is SecretStr or info.annotation == SecretStr | None
        ]


# -- errors a plugin raises; the sync engine turns them into delivery outcomes ----------------


class PullNotSupported(LookupError):
    """`pull_changes` was called on a connector that does not declare `Capability.PULL_CHANGES`
    (the framework checks `supports_pull()` first, so this is a plugin or caller bug)."""


class ConnectorError(Exception):
    """A remote call failed. `ambiguous`: the remote may have applied it anyway."""

    ambiguous: bool = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RemoteTimeout(ConnectorError):
    """No answer in time: the remote may or may not have committed (look it up before retrying)."""

    ambiguous = True


class RemoteUnavailable(ConnectorError):
    """Connection refused or a 5xx: for a write, possibly applied (a 5xx can follow a commit)."""

    ambiguous = True


class RateLimited(ConnectorError):
    """The remote asked us to slow down (HTTP 429); `retry_after` seconds if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status_code=429)
        self.retry_after = retry_after


class VersionMismatch(ConnectorError):
    """The record changed since we read it (HTTP 412): re-read, re-merge, try again."""


class RemoteRejected(ConnectorError):
    """The remote refused the request (a 4xx other than 409/412/429): fix config or data."""


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """A document as the remote holds it: its id, its version marker, and its fields."""

    external_id: str
    version: str  # a version number, ETag or updated-at — whatever the remote offers
    fields: dict[str, Any]


DEFAULT_PULL_CRON = "*/5 * * * *"


@dataclass(frozen=True, slots=True)
class RemoteChange:
    """A record the remote changed: which kind, their id, its version marker and its fields."""

    object_type: ObjectType
    external_id: str
    version: str  # version number, ETag or updated-at: a change already seen is skipped
    fields: dict[str, Any]
    updated_at: str | None = None  # as the remote reports it


class ChangeBatch(NamedTuple):
    """One page of pulled changes and where the next pull continues."""

    changes: list[RemoteChange]
    next_cursor: str | None
    more: bool = False  # another page is ready now


class ConnectorPlugin(abc.ABC):
    """What every connector declares."""

    slug: ClassVar[str]
    title: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    config_model: ClassVar[type[ConnectorConfig]]
    # Event types whose deliveries this connector needs (its subscriber's filter).
    event_types: ClassVar[tuple[str, ...]]

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config

    async def open(self) -> None:  # noqa: B027 — an optional hook
        """Acquire resources (HTTP clients); called before use."""

    async def close(self) -> None:  # noqa: B027 — an optional hook
        """Release what `open` acquired."""

    async def check(self) -> None:  # noqa: B027 — an optional hook
        """Raise a `ConnectorError` when the remote is unusable (credentials, reachability)."""


class DocumentConnector(ConnectorPlugin):
    """A remote system of documents (ERP, CRM, accounting API) Tradeflow pushes to."""

    reference_field: ClassVar[str] = "reference"

    def supports(self, object_type: ObjectType) -> bool:
        return CAPABILITY_OF[object_type] in self.capabilities

    def reference_name(self) -> str:
        """Their field that holds our id (searched before every create)."""
        return self.reference_field

    def settle_seconds(self) -> float:
        """How long after an unanswered create the remote has surely finished with it."""
        return 10.0

    def remote_field(self, object_type: ObjectType, our_field: str) -> str | None:
        """Their field that receives `our_field`, if it is mapped (reconciliation compares it)."""
        return None

    @abc.abstractmethod
    def map_out(self, object_type: ObjectType, document: dict[str, Any]) -> dict[str, Any]:
        """Our canonical document → the remote's fields (the configured field mapping)."""

    @abc.abstractmethod
    def ownership(self, object_type: ObjectType, remote_field: str) -> Ownership:
        """Who owns `remote_field` after creation: ours, theirs, or shared (three-way merge)."""

    @abc.abstractmethod
    async def find_by_reference(
        self, object_type: ObjectType, reference: str
    ) -> list[RemoteRecord]:
        """Every remote record carrying our reference (normally zero or one)."""

    @abc.abstractmethod
    async def fetch(self, object_type: ObjectType, external_id: str) -> RemoteRecord | None: ...

    @abc.abstractmethod
    async def create(
        self, object_type: ObjectType, fields: dict[str, Any], *, reference: str
    ) -> RemoteRecord: ...

    @abc.abstractmethod
    async def update(
        self,
        object_type: ObjectType,
        external_id: str,
        changes: dict[str, Any],
        *,
        if_version: str | None,
    ) -> RemoteRecord:
        """Apply `changes`; raise `VersionMismatch` when `if_version` is stale."""

    async def list_all(self, object_type: ObjectType) -> list[RemoteRecord]:
        """Every record of a type (reconciliation); plugins that cannot list return []."""
        return []

    # -- the pull side (`Capability.PULL_CHANGES`) -------------------------------------------
    def supports_pull(self) -> bool:
        return Capability.PULL_CHANGES in self.capabilities

    def local_field(self, object_type: ObjectType, remote_field: str) -> str | None:
        """Our document field that `remote_field` mirrors (pulled changes are applied to it)."""
        return None

    def pull_cron(self) -> str:
        """When the scheduled pull runs for an instance (five-field cron, UTC)."""
        return DEFAULT_PULL_CRON

    def pull_creates_unknown(self) -> bool:
        """Whether a pulled record with no external-id mapping becomes a new document of ours
        (when the owning context can create one); otherwise it is only reported."""
        return False

    async def pull_changes(self, cursor: str | None) -> ChangeBatch:
        """Remote records changed since `cursor` (None: from the beginning), one page at a time.

        Returns the page and the cursor to continue from. The framework stores that cursor
        only after it has applied the page, so a crash re-pulls it; applying is idempotent (a
        change whose version was already seen is a no-op). `more` says another page is
        waiting now; the plugin decides what a cursor encodes (pages, per-type watermarks).
        """
        raise PullNotSupported(f"connector {self.slug!r} does not pull changes")


@dataclass(frozen=True, slots=True)
class JournalLine:
    account_code: str
    account_name: str
    account_type: str  # asset, liability, equity, revenue, expense
    debit_minor: int
    credit_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One balanced journal entry of ours, as a journal connector exports it."""

    id: str
    posted_at: datetime
    entry_date: date
    description: str
    source_type: str
    source_id: str
    lines: Sequence[JournalLine]
    links: dict[str, str] = field(default_factory=dict)  # our ids: invoice, payment, order, event


class JournalConnector(ConnectorPlugin):
    """A journal export (e.g. a Beancount file): entries appended once each, keyed by our id."""

    @abc.abstractmethod
    async def exported_ids(self) -> set[str]:
        """The ids of entries the remote already holds (look before appending)."""

    @abc.abstractmethod
    async def append(self, entries: Iterable[JournalEntry]) -> int:
        """Append entries not yet present (the plugin re-checks under its own lock)."""

    @abc.abstractmethod
    async def balances(self) -> dict[tuple[str, str], int]:
        """(account code, currency) → debit-positive balance in minor units, per the remote."""


# -- loading -----------------------------------------------------------------------------------

_REGISTRY: dict[str, type[ConnectorPlugin]] = {}


def register(plugin: type[ConnectorPlugin]) -> type[ConnectorPlugin]:
    """Register a plugin class directly (tests, in-tree plugins without an installed dist)."""
    _REGISTRY[plugin.slug] = plugin
    return plugin


def available() -> dict[str, type[ConnectorPlugin]]:
    """Every plugin: entry points of `tradeflow.connectors`, plus directly registered ones."""
    if not getattr(available, "_loaded", False):
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                cls = ep.load()
            except Exception:  # a broken third-party plugin must not take the platform down
                log.exception("connector_plugin_failed_to_load", entry_point=ep.name)
                continue
            if not (isinstance(cls, type) and issubclass(cls, ConnectorPlugin)):
                log.error("connector_plugin_not_a_connector", entry_point=ep.name)
                continue
            _REGISTRY.setdefault(cls.slug, cls)
        available._loaded = True  # type: ignore[attr-defined]
    return dict(_REGISTRY)


def plugin_for(kind: str) -> type[ConnectorPlugin] | None:
    return available().get(kind)
