"""The `nightshift` command line (also `python -m bot`): every command and its arguments in one
place; each command's module is imported only when that command runs, so `nightshift detect`
does not pay for the store, the chat SDKs or the scheduler."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date

from bot.errors import CliError
from bot.settings import SettingsError, load_settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE = 0, 2


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-07-12") from None


def _handler(path: str) -> Callable[[argparse.Namespace], int]:
    """`module:function`, imported when the command runs."""
    module, _, name = path.partition(":")
    found: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nightshift", description="Chat-ops bot for the night shift of a payments operation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: str, summary: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary)
        p.set_defaults(handler=handler)
        return p

    command("serve", "bot.commands:cmd_serve", "the bot: HTTP, chat adapters, scheduler, detector")

    p = command("demo", "bot.demo:cmd_demo", "serve plus a simulated night replayed into it")
    p.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated minutes per real minute (default 60: an hour a minute)",
    )
    p.add_argument("--hours", type=int, default=10, help="hours simulated, from 16:00 local")
    p.add_argument("--seed", type=int, default=7, help="seed of the simulated feed")

    p = command("ask", "bot.commands:cmd_ask", "run one chat command and print the reply")
    p.add_argument("--as", dest="as_user", metavar="USER", help="platform:user_id")
    p.add_argument("text", nargs=argparse.REMAINDER)

    command("chat", "bot.commands:cmd_chat", "interactive console chat")

    p = command("ingest", "bot.commands:cmd_ingest", "load transaction files into the store")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--date", type=_date, help="date for files whose times have none (HHh MM)")

    p = command("replay", "bot.commands:cmd_replay", "send a feed file to a running bot, paced")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--url", help="the bot's /transactions URL")
    p.add_argument("--speed", type=float, default=60.0, help="minutes of feed per real minute")
    p.add_argument("--date", type=_date, help="date for files whose times have none")

    p = command(
        "analyze",
        "bot.offline:cmd_analyze",
        "offline anomaly analysis of a checkout or transactions CSV",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--chart", metavar="OUT.png", help="write a PNG chart")
    p.add_argument("--date", type=_date, help="date for files whose times have none")
    p.add_argument("--auth-codes", metavar="FILE", help="authorization-code breakdown CSV")

    p = command("detect", "bot.offline:cmd_detect", "streaming anomaly scores for a univariate CSV")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--time-col", metavar="C")
    p.add_argument("--value-col", metavar="C")
    p.add_argument("--output", metavar="OUT.csv")

    p = command(
        "simulate", "bot.offline:cmd_simulate", "a synthetic per-minute feed with incidents"
    )
    p.add_argument("--hours", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--incidents", metavar="LIST", help="comma list of incident kinds")
    p.add_argument(
        "--dimensions",
        metavar="LIST",
        help="dimensions and their number of values, e.g. acquirer:5,brand:4 (adds slice "
        "incidents: an acquirer down, a brand's denials surging, a slice degrading)",
    )
    p.add_argument("--output", metavar="FEED.csv", required=True)
    p.add_argument("--labels", metavar="LABELS.json")

    runbook = sub.add_parser("runbook", help="runbooks from the shell (audited)")
    actions = runbook.add_subparsers(dest="runbook_command", required=True, metavar="ACTION")
    p = actions.add_parser("list", help="the whitelisted runbooks")
    p.set_defaults(handler="bot.runbook_cli:cmd_list")
    p = actions.add_parser("show", help="one runbook: parameters, steps, argv templates")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler="bot.runbook_cli:cmd_show")
    p = actions.add_parser("run", help="run a runbook as shell:<login name> (an admin)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("params", nargs="*", metavar="key=value")
    p.add_argument("--dry-run", action="store_true", help="print the exact argv, run nothing")
    p.add_argument(
        "--yes", action="store_true", help="confirm a dangerous runbook without typing its code"
    )
    p.set_defaults(handler="bot.runbook_cli:cmd_run")

    command(
        "jobs",
        "bot.jobs_cli:cmd_jobs",
        "scheduled jobs with their next run time in the configured time zone",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.settings = load_settings()
        code: int = _handler(args.handler)(args)
    except (SettingsError, CliError) as error:
        print(f"nightshift: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`nightshift analyze … | head`): nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
