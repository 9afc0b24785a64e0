"""`make dev`: `langgraph dev` (the LangGraph Studio backend) on a port you choose.

    python -m src.studio_dev --port 2025

Unlike a bare `langgraph dev`, it
- fails with a clear message when the port is taken (`langgraph dev` would silently
  move to a random port, and the Studio URL you were given would point nowhere);
- prints the Studio URL of the real port;
- watches only the code folders for reloads, not the embedded database under `.data/`
  or langgraph dev's own `.langgraph_api/` files, which change every few seconds.

`langgraph dev` has no option for the watched folders, so its `run_server` gets them
added; everything else (langgraph.json, the checkpointer...) is `langgraph dev`'s own.
Needs the dev dependency group (langgraph-cli).
"""

from __future__ import annotations

import argparse
import functools
import socket
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 2024
# Code folders the reloader watches (only their *.py files trigger a reload).
WATCHED = ("src", "graphs")
STUDIO_URL = "https://smith.langchain.com/studio/?baseUrl=http://{host}:{port}"


def port_is_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` (checked as langgraph dev checks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make dev", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: 2024")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (loopback)")
    parser.add_argument("--no-reload", action="store_true", help="do not watch the code")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Check the port, print the Studio URL, then run `langgraph dev` in this process."""
    args = _arguments(argv)
    if not port_is_free(args.host, args.port):
        print(
            f"make dev: port {args.port} is already in use on {args.host}. Stop what is "
            f"using it, or choose another port: make dev PORT={args.port + 1}",
            file=sys.stderr,
        )
        return 1
    try:
        import langgraph_api.cli
        from langgraph_cli.cli import cli
    except ImportError:
        print("make dev: langgraph-cli is not installed (run `make sync`).", file=sys.stderr)
        return 1

    watched = [str(ROOT / folder) for folder in WATCHED if (ROOT / folder).is_dir()]
    run_server: Any = langgraph_api.cli.run_server
    # Extra keyword arguments of run_server that uvicorn.run accepts are passed to it.
    langgraph_api.cli.run_server = functools.partial(run_server, reload_dirs=watched)
    print(f"Studio: {STUDIO_URL.format(host=args.host, port=args.port)}", flush=True)
    command = ["dev", "--no-browser", "--host", args.host, "--port", str(args.port)]
    if args.no_reload:
        command.append("--no-reload")
    return cli.main(command, prog_name="langgraph", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
