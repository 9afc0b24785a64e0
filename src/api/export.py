"""A session's export: its transcript (and, if asked, every branch) as a JSON document
(`SessionExport`) or as Markdown for people (`to_markdown`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from src.api.lifecycle_schemas import ExportBranch, SessionExport
from src.api.turn_messages import text_of

SPEAKERS = {"user": "You", "assistant": "Vera", "system": "System"}
MEDIA_TYPES = {"json": "application/json", "markdown": "text/markdown"}


def wanted_format(accept: str | None) -> str:
    """`markdown` when the Accept header prefers text/markdown to JSON, else `json`."""
    best, best_q = "json", 0.0
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for name, media_type in MEDIA_TYPES.items():
            if media.lower() == media_type and q > best_q:
                best, best_q = name, q
    return best


def title_for(stored_title: str, messages: list[dict[str, Any]]) -> str:
    """The session's title, or its first user message on one line."""
    if stored_title:
        return stored_title
    for message in messages:
        if message.get("role") == "user":
            line = " ".join(text_of(message.get("content") or "").split())
            if line:
                return line if len(line) <= 80 else line[:79] + "…"
    return "Conversation"


def _when(element: dict[str, Any]) -> str:
    stamp = element.get("timestamp")
    if not isinstance(stamp, int | float):
        return ""
    return " · " + datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fenced(text: str, language: str = "") -> str:
    """`text` in a code fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _tool_output(content: Any) -> str:
    text = text_of(content) if isinstance(content, str | list) else json.dumps(content)
    try:
        return _fenced(json.dumps(json.loads(text), indent=2, ensure_ascii=False), "json")
    except ValueError:
        return _fenced(text)


def _message(element: dict[str, Any]) -> str:
    role = element.get("role", "")
    parts: list[str] = []
    if role == "tool":
        name = element.get("name") or "tool"
        parts.append(f"**Tool `{name}`**{_when(element)}")
        parts.append(_tool_output(element.get("content")))
        return "\n\n".join(parts)
    parts.append(f"**{SPEAKERS.get(role, role.title() or 'Message')}**{_when(element)}")
    text = text_of(element.get("content") or "").strip()
    if text:
        parts.append(text)
    for call in element.get("tool_calls") or []:
        args = json.dumps(call.get("args", {}), ensure_ascii=False)
        parts.append(f"> Calls `{call.get('name', 'tool')}` with `{args}`")
    return "\n\n".join(parts)


def _common_prefix(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _branch(branch: ExportBranch, transcript: list[dict[str, Any]]) -> str:
    shared = _common_prefix(branch.messages, transcript)
    head = (
        f"### Branch `{branch.checkpoint_id}` ({branch.created_at:%Y-%m-%d %H:%M:%S %Z})\n\n"
        f"_Shares the first {shared} messages of the transcript, then:_"
    )
    rest = [_message(m) for m in branch.messages[shared:]] or ["_(nothing more)_"]
    return "\n\n".join([head, *rest])


def to_markdown(export: SessionExport) -> str:
    """The export as a Markdown document: a header, then each message in order."""
    lines = [f"# {export.title}", ""]
    lines.append(f"- Session: `{export.session_id}`")
    if export.created_at is not None:
        lines.append(f"- Started: {export.created_at:%Y-%m-%d %H:%M:%S %Z}")
    lines.append(f"- Exported: {export.exported_at:%Y-%m-%d %H:%M:%S %Z}")
    lines.append(f"- Messages: {len(export.messages)}")
    body = [_message(m) for m in export.messages] or ["_No messages._"]
    sections = ["\n".join(lines), "---", *body]
    others = [b for b in export.branches or [] if not b.shown]
    if others:
        sections.append("## Other branches")
        sections.extend(_branch(b, export.messages) for b in others)
    return "\n\n".join(sections) + "\n"
