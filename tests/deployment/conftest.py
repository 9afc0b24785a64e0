"""Fixtures of the deployment tier's browser tests: the chat page's driver and page."""

from tests.chat_page import driver, page

__all__ = ["driver", "page"]
