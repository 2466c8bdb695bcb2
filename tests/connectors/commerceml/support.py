"""A test "1C": speaks the exchange protocol to the app over HTTP, as 1C's exchange module does."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from httpx import AsyncClient, Response

from customers.support import Seller, uniq

DATA = Path(__file__).parent / "data"
LOGIN, PASSWORD = "1c-exchange", "Пароль-обмена-42"
WHOLESALE_TYPE_ID = "c0000001-1f3c-11ef-8c4a-00155d012a01"  # "Оптовая", mapped by its Ид
RETAIL_TYPE_NAME = "Розничная"  # mapped by its name


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


class OneC:
    """1C's side of the exchange: checkauth, init, chunked file upload, import, query, success."""

    def __init__(
        self,
        client: AsyncClient,
        connector_id: str,
        *,
        login: str = LOGIN,
        password: str = PASSWORD,
    ) -> None:
        self.client = client
        self.url = f"/v1/connectors/{connector_id}/commerceml/exchange"
        self.auth = (login, password)
        self.cookie: tuple[str, str] | None = None
        self.steps = 0  # `mode=import` calls the last file took

    async def call(
        self, method: str = "GET", content: bytes | None = None, **params: str
    ) -> Response:
        headers: dict[str, str] = {}
        if self.cookie is not None:
            headers["Cookie"] = f"{self.cookie[0]}={self.cookie[1]}"
        return await self.client.request(
            method, self.url, params=params, content=content, headers=headers, auth=self.auth
        )

    async def checkauth(self, type_: str) -> Response:
        r = await self.call(type=type_, mode="checkauth")
        lines = r.text.split("\n")
        if lines[0] == "success":
            self.cookie = (lines[1], lines[2])
        return r

    async def init(self, type_: str) -> dict[str, str]:
        r = await self.call(type=type_, mode="init")
        assert r.status_code == 200, r.text
        return dict(line.split("=", 1) for line in r.text.split("\n"))

    async def upload(self, name: str, body: bytes, *, chunk: int, type_: str = "catalog") -> None:
        for start in range(0, len(body), chunk):
            r = await self.call(
                "POST", body[start : start + chunk], type=type_, mode="file", filename=name
            )
            assert r.text == "success", r.text

    async def exchange_catalog(self, *files: tuple[str, bytes], chunk: int = 2048) -> list[str]:
        """A whole catalog exchange; the answer to each `mode=import`."""
        r = await self.checkauth("catalog")
        assert r.text.startswith("success"), r.text
        limits = await self.init("catalog")
        assert limits["zip"] == "no"
        chunk = min(chunk, int(limits["file_limit"]))
        answers = []
        for name, body in files:
            r = await self.call("POST", body[:chunk], type="catalog", mode="file", filename=name)
            if r.text != "success":
                answers.append(r.text)
                continue
            await self.upload(name, body[chunk:], chunk=chunk)
            r = await self.call(type="catalog", mode="import", filename=name)
            self.steps = 1
            while r.text.startswith("progress"):  # as 1C does: ask again until it is done
                r = await self.call(type="catalog", mode="import", filename=name)
                self.steps += 1
            answers.append(r.text)
        return answers

    async def query_orders(self) -> Response:
        if self.cookie is None:
            r = await self.checkauth("sale")
            assert r.text.startswith("success"), r.text
            await self.init("sale")
        return await self.call(type="sale", mode="query")

    async def success(self) -> Response:
        return await self.call(type="sale", mode="success")


async def create_connector(client: AsyncClient, seller: Seller, **config: Any) -> dict[str, Any]:
    body = {
        "kind": "commerceml",
        "name": uniq("1c"),
        "config": {"login": LOGIN, "password": PASSWORD, **config},
    }
    r = await client.post("/v1/connectors", json=body, headers=seller.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def exchanges(client: AsyncClient, seller: Seller, connector_id: str) -> list[dict[str, Any]]:
    """The connector's exchanges, oldest first."""
    r = await client.get(
        f"/v1/connectors/{connector_id}/commerceml/exchanges",
        params={"limit": 100},
        headers=seller.headers,
    )
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))  # the API lists newest first


def new_id() -> str:
    return str(uuid.uuid4())
