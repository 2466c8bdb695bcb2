"""`python -m tradeflow.sandbox --database-url URL [--port P] [--control-port C]`.

The stand-alone entry the tests start as a subprocess; operators use
`tradeflow sandbox`, which finds the database from Tradeflow's settings.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from tradeflow.observability.logging import configure_logging
from tradeflow.sandbox.server import SandboxServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tradeflow.sandbox")
    parser.add_argument("--database-url", required=True, help="the sandbox's own database")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="API port (0: any free port)")
    parser.add_argument("--control-port", type=int, default=8101, help="control port (0: any)")
    parser.add_argument("--ready-file", type=Path, help="write the URLs here once listening")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, "json")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = SandboxServer(
            args.database_url, host=args.host, port=args.port, control_port=args.control_port
        )
        await server.run(stop, ready_file=args.ready_file)

    asyncio.run(run())


if __name__ == "__main__":
    main()
