"""Run the fake ERP: `python -m fake_erp --port P --db FILE --token T` (from tests/integrations)."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fake_erp.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="fake_erp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.db, token=args.token),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
