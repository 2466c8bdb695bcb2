"""CommerceML import benchmark, run on demand — not part of CI.

    .venv/bin/python bench/commerceml.py [--products 2000] [--variants 3]

1. Starts an embedded PostgreSQL (or uses TRADEFLOW_DATABASE_URL's server), creates a fresh
   database, migrates it, and seeds a tenant, two RUB price lists and a `commerceml`
   connector mapping two 1C price types onto them — through the services.
2. Generates an import.xml of P products (every fifth one with V variants in offers.xml)
   and an offers.xml with two prices per offer.
3. Imports each file as the exchange does (`operations.run_import`: parse, one transaction, a
   savepoint per row), then both again (the idempotent path: nothing written).

Per phase: wall seconds and CPU ms per row of this process (parse, services, SQLAlchemy,
driver) and of PostgreSQL. An import runs inside 1C's `mode=import` request, so the wall
time says how large a catalog one request can carry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders import cpu_seconds, private_database

WHOLESALE, RETAIL = "c0000001-0000-0000-0000-000000000001", "c0000002-0000-0000-0000-000000000002"


def product_id(n: int) -> str:
    return f"b{n:07d}-1f3c-11ef-8c4a-00155d012a01"


def files(products: int, variants: int) -> tuple[bytes, bytes]:
    goods, offers = [], []
    for n in range(products):
        pid = product_id(n)
        goods.append(
            f"<Товар><Ид>{pid}</Ид><Артикул>ART-{n}</Артикул>"
            f"<Наименование>Товар №{n} оцинкованный</Наименование>"
            f'<БазоваяЕдиница Код="796">шт</БазоваяЕдиница>'
            f"<Описание>Описание товара {n}</Описание></Товар>"
        )
        ids = [(pid, f"ART-{n}")]
        if n % 5 == 0:
            ids += [(f"{pid}#v{v:035d}", f"ART-{n}-{v}") for v in range(variants)]
        for oid, art in ids:
            offers.append(
                f"<Предложение><Ид>{oid}</Ид><Артикул>{art}</Артикул>"
                f"<Наименование>Товар №{n} {art}</Наименование><Цены>"
                f"<Цена><ИдТипаЦены>{WHOLESALE}</ИдТипаЦены><ЦенаЗаЕдиницу>{100 + n}.50"
                f"</ЦенаЗаЕдиницу><Валюта>RUB</Валюта></Цена>"
                f"<Цена><ИдТипаЦены>{RETAIL}</ИдТипаЦены><ЦенаЗаЕдиницу>{130 + n}.00"
                f"</ЦенаЗаЕдиницу><Валюта>руб</Валюта></Цена></Цены></Предложение>"
            )
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация ВерсияСхемы="2.08">'
    catalog = f"{head}<Каталог><Товары>{''.join(goods)}</Товары></Каталог></КоммерческаяИнформация>"
    package = (
        f"{head}<ПакетПредложений><ТипыЦен>"
        f"<ТипЦены><Ид>{WHOLESALE}</Ид><Наименование>Оптовая</Наименование></ТипЦены>"
        f"<ТипЦены><Ид>{RETAIL}</Ид><Наименование>Розничная</Наименование></ТипЦены>"
        f"</ТипыЦен><Предложения>{''.join(offers)}</Предложения></ПакетПредложений>"
        "</КоммерческаяИнформация>"
    )
    return catalog.encode(), package.encode()


async def seed(db: Any, keyring: Any) -> Any:
    from tradeflow.catalog import prices
    from tradeflow.catalog.schemas import PriceListIn
    from tradeflow.connectors.commerceml import operations
    from tradeflow.identity import service as identity
    from tradeflow.integrations import service as integrations

    async with db.system_session() as s:
        tenant = await identity.create_tenant(s, name="Bench seller", slug="bench-1c")
        await s.commit()
    async with db.tenant_session(tenant.id) as s:
        lists = [
            await prices.create_price_list(s, tenant.id, PriceListIn(name=name, currency="RUB"))
            for name in ("Опт", "Розница")
        ]
        instance = await integrations.create_instance(
            s,
            tenant.id,
            keyring=keyring,
            kind="commerceml",
            name="1c",
            config={
                "login": "1c",
                "password": "bench",
                "price_types": {WHOLESALE: str(lists[0].id), RETAIL: str(lists[1].id)},
                "max_file_bytes": 500_000_000,
            },
        )
        await s.commit()
    return await operations.resolve(db, keyring, instance.id)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from tradeflow.config import load_settings
    from tradeflow.connectors.commerceml import operations
    from tradeflow.db import Database
    from tradeflow.kit.keyring import load_keyring
    from tradeflow.observability.logging import configure_logging

    configure_logging("warning", "json")
    with private_database() as (home, server, url):
        db: Any = None
        try:
            settings = load_settings(database_url=url, home=home)
            keyring = load_keyring(settings)
            db = Database.from_settings(settings, url)
            target = await seed(db, keyring)
            catalog, package = files(args.products, args.variants)
            marker = str(home / "pgdata") if server is not None else None
            result: dict[str, Any] = {
                "bytes": {"import.xml": len(catalog), "offers.xml": len(package)}
            }
            for phase in ("first", "again"):
                for name, body in (("import.xml", catalog), ("offers.xml", package)):
                    own0, pg0 = time.process_time(), cpu_seconds([], marker=marker)
                    start = time.perf_counter()
                    row = await operations.run_import(db, target, body, filename=name, source="cli")
                    wall = time.perf_counter() - start
                    own, pg = time.process_time() - own0, cpu_seconds([], marker=marker) - pg0
                    rows = row.counts.get("products", 0) + row.counts.get("offers", 0)
                    result[f"{phase} {name}"] = {
                        "status": row.status,
                        "rows": rows,
                        "wall_s": round(wall, 2),
                        "cpu_ms_per_row": {
                            "tradeflow": round(own * 1000 / max(rows, 1), 2),
                            "postgres": round(pg * 1000 / max(rows, 1), 2),
                        },
                        "counts": {k: v for k, v in row.counts.items() if v},
                    }
            result.update(cpus=os.cpu_count(), load_average_1m=round(os.getloadavg()[0], 2))
            return result
        finally:
            if db is not None:
                await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--variants", type=int, default=3, help="Per fifth product.")
    print(json.dumps(asyncio.run(bench(parser.parse_args())), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
