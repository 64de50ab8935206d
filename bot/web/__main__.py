"""Serve the demo page: `python -m bot.web [--port 8000] [--rasa-port 5005] [--socket-url URL]`."""
from __future__ import annotations

import argparse
import os
from typing import List, Optional

from bot.web.app import WebConfig, run


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.web", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("WEB_HOST") or os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", 8000)))
    parser.add_argument("--rasa-port", type=int, default=int(os.environ.get("RASA_PORT", 5005)),
                        help="the Rasa server's port; the widget connects to the page's host on it")
    parser.add_argument("--socket-url", default=os.environ.get("RASA_SOCKET_URL") or None,
                        help="fixed URL of the Rasa server for the widget (e.g. behind a proxy)")
    args = parser.parse_args(argv)
    run(WebConfig(rasa_port=args.rasa_port, socket_url=args.socket_url), args.host, args.port)


if __name__ == "__main__":
    main()
