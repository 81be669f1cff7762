"""The ``cfgexplorer`` command line.

Every subcommand lives in ``cfgexplorer/commands/<name>.py`` with two
functions: ``register(subparsers)`` adds its arguments (cheap, no heavy
imports) and ``run(args)`` does the work and returns a JSON-able result or an
exit status. Output conventions are shared here: JSON on stdout by default,
``--pretty`` for people, ``--output FILE``; exit 0 ok, 2 bad input,
1 unexpected; one line on stderr unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cfgexplorer.errors import UserError

log = logging.getLogger(__name__)

# name -> module under cfgexplorer.commands; the order is the order of --help.
COMMANDS: dict[str, str] = {
    "models": "catalog_cmds",
    "model": "catalog_cmds",
    "plan": "plan",
    "profiles": "plan",
    "gpus": "gpus",
    "estimate": "estimate",
    "sweep": "sweep",
    "fleet": "fleet",
    "serve": "serve",
}

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def add_common_output_args(parser: argparse.ArgumentParser, output_help: str) -> None:
    """Add ``--pretty``, ``--output`` and ``--verbose`` to a subcommand."""
    parser.add_argument("--pretty", action="store_true", help="print for people, not JSON")
    parser.add_argument("--output", metavar="FILE", type=_output_path, help=output_help)
    parser.add_argument(
        "--verbose", action="store_true", help="more detail, and tracebacks on errors"
    )


def _output_path(text: str) -> str:
    """An --output value: a file name, or - for standard output; never empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("--output needs a file name (or - for standard output)")
    return text


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = _Parser(
        prog="cfgexplorer",
        description="Capacity planning and GPU recommendation for serving LLMs with vLLM.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    seen: set[str] = set()
    for module_name in COMMANDS.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        module = _command_module(module_name)
        if module is not None:
            module.register(sub)
    return parser


def _command_module(module_name: str) -> Any:
    """Import a command module; a missing one (not built yet) is skipped."""
    try:
        return importlib.import_module(f"cfgexplorer.commands.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"cfgexplorer.commands.{module_name}":
            return None
        raise


def to_json(result: Any) -> str:
    """Serialise a result as stable, indented JSON."""
    return json.dumps(result, indent=2, sort_keys=False, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit(
    result: Any,
    args: argparse.Namespace,
    render_pretty: Callable[[Any], str] | None = None,
) -> int:
    """Write a command's result.

    stdout gets JSON, or the pretty text with ``--pretty``; ``--output FILE`` writes the
    JSON to FILE (``-`` means stdout) and leaves stdout to ``--pretty`` alone. The whole
    text is built before anything is written, so a failure never leaves half an answer.
    """
    pretty = bool(getattr(args, "pretty", False)) and render_pretty is not None
    output = getattr(args, "output", None)
    as_json = to_json(result)
    if output and output != "-":
        path = Path(output).expanduser()
        try:
            path.write_text(as_json)
        except OSError as exc:
            raise UserError(
                f"cannot write {output} ({exc.strerror or exc}); choose a writable file path"
            ) from exc
        if pretty:
            sys.stdout.write(render_pretty(result))
        return EXIT_OK
    sys.stdout.write(render_pretty(result) if pretty else as_json)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cfgexplorer`` and ``config-explorer`` scripts."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (status 2) and --help (status 0)
        return int(exc.code or 0)
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        status = args.handler(args)
    except UserError as exc:
        if verbose:
            log.exception("bad input")
        sys.stderr.write(f"cfgexplorer: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("cfgexplorer: interrupted\n")
        return EXIT_UNEXPECTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if verbose:
            raise
        sys.stderr.write(
            f"cfgexplorer: unexpected error: {type(exc).__name__}: {exc} "
            "(run again with --verbose for the traceback)\n"
        )
        return EXIT_UNEXPECTED
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
