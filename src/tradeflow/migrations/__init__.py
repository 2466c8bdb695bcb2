"""Alembic migrations, shipped inside the package so `tradeflow migrate` works when installed.

Each bounded context keeps its own branch of revisions (`branch_labels`), all
rooted at `base_0001`; a context that needs another's tables declares
`depends_on`. Upgrading always targets `heads`. This lets contexts evolve their
schema without serialising every change through one linear history.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

HERE = Path(__file__).parent


def alembic_config(url: str | None = None, *, app_role: str = "tradeflow_app") -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        from tradeflow.db import sync_url

        cfg.set_main_option(
            "sqlalchemy.url", sync_url(url).render_as_string(hide_password=False).replace("%", "%%")
        )
    cfg.attributes["app_role"] = app_role
    return cfg


def upgrade(url: str, *, app_role: str = "tradeflow_app", revision: str = "heads") -> None:
    command.upgrade(alembic_config(url, app_role=app_role), revision)


@lru_cache(maxsize=1)
def expected_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())
