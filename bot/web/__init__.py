"""The demo web page with the chat widget (aiohttp): `python -m bot.web`, started by `make run`."""
from bot.web.app import WebConfig, create_app, page_origins

__all__ = ["WebConfig", "create_app", "page_origins"]
