"""``cfgexplorer serve``: run the dashboard with ``panel serve``.

The same as ``panel serve cfgexplorer/app.py`` plus two things: the sweep root
is exposed read-only under ``/sweep-files/`` (so a point of the Pareto plot can
link to its result file), and the options a shared or embedded deployment
needs are spelled out: ``--address``, ``--allow-websocket-origin`` (repeat it for
every host name the page is opened or embedded from) and ``--num-procs``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PORT = 5006
DEFAULT_ADDRESS = "127.0.0.1"


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the dashboard (panel serve)",
        description=(
            "Serve the Config Explorer dashboard. Pages: capacity, recommend, sweep, fleet; "
            "append ?page=NAME&embed=true to a URL to show one page alone in an iframe."
        ),
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 5006)")
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a host allowed to open the dashboard's websocket (repeatable); needed when "
        "the page is reached or embedded under another name than the address",
    )
    parser.add_argument(
        "--num-procs", type=int, default=1, help="worker processes (0 = one per CPU)"
    )
    parser.add_argument("--show", action="store_true", help="open the dashboard in a browser")
    parser.add_argument(
        "--verbose", action="store_true", help="log at INFO level, tracebacks on errors"
    )
    parser.set_defaults(handler=run)


def panel_arguments(args: argparse.Namespace) -> list[str]:
    """The ``panel serve`` command line for these options."""
    from cfgexplorer.models.sweep import FILE_ROUTE, UPLOAD_MESSAGE_BYTES, sweep_root

    app = Path(__file__).resolve().parent.parent / "app.py"
    argv = [
        "panel",
        "serve",
        str(app),
        "--port",
        str(args.port),
        "--address",
        args.address,
        "--num-procs",
        str(args.num_procs),
        "--warm",  # build one session at start-up so the first visitor does not wait
        "--static-dirs",
        f"{FILE_ROUTE}={sweep_root()}",
        # An upload arrives as one websocket message; Bokeh's 20 MB default would drop the
        # session on one large result file instead of letting the page skip it.
        "--websocket-max-message-size",
        str(UPLOAD_MESSAGE_BYTES),
    ]
    for origin in args.allow_websocket_origin:
        argv += ["--allow-websocket-origin", origin]
    if args.show:
        argv.append("--show")
    return argv


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns panel's exit status."""
    if args.port < 0 or args.port > 65535:
        from cfgexplorer.errors import UserError

        raise UserError(f"--port {args.port} is not a port number (0-65535)")
    from panel.command import main as panel_main

    from cfgexplorer.app import install_log_redaction

    # Before the server starts: the first request may carry a token in its link.
    install_log_redaction()
    argv = panel_arguments(args)
    log.info("running %s", " ".join(argv))
    sys.argv = argv
    status = panel_main()
    return int(status or 0)
