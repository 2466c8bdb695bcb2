"""Where a local sandbox lives next to a Tradeflow instance (`tradeflow up --demo`, `tradeflow
sandbox serve`): its own database on the same PostgreSQL server, ports next to the API's."""

from __future__ import annotations

from dataclasses import dataclass

from tradeflow.config import Settings

SANDBOX_DATABASE = "tradeflow_sandbox"
DEFAULT_PORT = 8100
# The API on port P puts its sandbox on P+100 (API) and P+101 (control), so two instances
# started side by side with different ports get different sandboxes too.
PORT_OFFSET = 100


@dataclass(frozen=True)
class LocalSandbox:
    host: str
    port: int
    control_port: int

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"


def local_sandbox(settings: Settings) -> LocalSandbox:
    port = settings.port + PORT_OFFSET if settings.port else DEFAULT_PORT
    if port + 1 > 65535:
        port = DEFAULT_PORT
    return LocalSandbox(host="127.0.0.1", port=port, control_port=port + 1)


def sandbox_database_url(server_url: str) -> str:
    """The sandbox's own database on the server behind `server_url` (created if missing)."""
    from tradeflow.sandbox.store import ensure_database

    return ensure_database(server_url, SANDBOX_DATABASE)
