"""`GET /`: the chat page, and `GET /static/{name}`: its files (HTML, CSS, JavaScript modules).

Everything the page needs is served from `src/api/static/` (no bundler, no CDN), under a
Content-Security-Policy of its own that allows only this origin's scripts, styles and
connections (the API's strict default would block the page)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(tags=["page"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; "
    "object-src 'none'"
)
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The files are looked up by name in this table, never joined to a path from the request.
FILES = {
    path.name: path
    for path in sorted(STATIC_DIR.iterdir())
    if path.is_file() and path.suffix in MEDIA_TYPES
}
HEADERS = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}


def _file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise HTTPException(404, f"No file {name!r}.")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
async def index() -> FileResponse:
    """The chat page."""
    return _file("index.html")


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    """A file of the chat page."""
    return _file(name)
