"""The SSRF guard: webhook targets must be public addresses unless the operator allows private.

Names are resolved by the guard itself and the connection goes to the
addresses it checked (aiohttp connects to what the resolver returns), so a
DNS answer cannot switch to an internal address between check and connect.
Redirects are never followed and response bodies are read up to a cap
(see `transport`).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from tradeflow.errors import UnprocessableEntity

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(Exception):
    """The target resolves to an address that webhooks may not reach."""


class InvalidWebhookUrl(UnprocessableEntity):
    slug, title = "invalid-webhook-url", "Webhook URL not allowed"


def is_private(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def check_address(address: str, *, allow_private: bool) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not allow_private and is_private(ip):
        raise BlockedAddress(
            f"{address} is a private, loopback or link-local address "
            "(set TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE=true to allow it)"
        )


def validate_url(url: str, *, allow_private: bool) -> str:
    """Reject what can be rejected without DNS: bad schemes, credentials, private IP literals."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise InvalidWebhookUrl("The URL must use https (or http).")
    if not parts.hostname:
        raise InvalidWebhookUrl("The URL has no host.")
    if parts.username or parts.password:
        raise InvalidWebhookUrl("Put credentials in the endpoint's secret, not in the URL.")
    if parts.hostname in ("localhost", "localhost.localdomain") and not allow_private:
        raise InvalidWebhookUrl("The URL targets this host, which webhooks may not reach.")
    try:
        check_address(parts.hostname, allow_private=allow_private)
    except ValueError:
        pass  # a name, checked again at each delivery after resolution
    except BlockedAddress as exc:
        raise InvalidWebhookUrl(str(exc)) from exc
    return url


class GuardedResolver(AbstractResolver):
    """Resolve with the system resolver, then refuse any forbidden address."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(result["host"], allow_private=self._allow_private)
        return results

    async def close(self) -> None:
        await self._inner.close()


def describe(exc: BaseException) -> dict[str, Any]:
    return {"error": f"{type(exc).__name__}: {exc}"}
