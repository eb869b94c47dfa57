"""The `nightshift` command line (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from bot import demo, jobs_cli, offline, runbook_cli
from bot.app import App, Core, build_core
from bot.console import ConsoleChat, login_name
from bot.errors import CliError
from bot.settings import Settings, SettingsError, load_settings
from runbooks.errors import RunbookConfigError
from skills.core import Invocation, Reply
from storage.parsing import FeedBatch, FeedError, load_file
from storage.store import StorageError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


def _core(args: argparse.Namespace) -> Core:
    settings: Settings = args.settings
    try:
        return build_core(settings)
    except StorageError as error:
        raise CliError(f"NIGHTSHIFT_DATABASE_URL: {error}") from None
    except RunbookConfigError as error:
        raise CliError(f"NIGHTSHIFT_RUNBOOKS_DIR: {error}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    settings.check_serve()
    # python-telegram-bot 22 warns on every retry_after unless told to use timedeltas.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    core = _core(args)
    app = App(core)
    print(
        f"nightshift listening on http://{settings.host}:{settings.port} "
        f"(store {core.store.dialect}, {settings.database_url.split('://')[0]})",
        file=sys.stderr,
    )
    try:
        app.run_server()
    except OSError as error:
        raise CliError(
            f"NIGHTSHIFT_PORT: cannot listen on {settings.host}:{settings.port} ({error.strerror})"
        ) from None
    finally:
        core.close()
    return EXIT_OK


def cmd_ask(args: argparse.Namespace) -> int:
    text = " ".join(args.text).strip()
    if not text:
        raise CliError("ask: give a command, e.g. nightshift ask status")
    platform, _, user = (args.as_user or f"console:{login_name()}").partition(":")
    if not user:
        raise CliError(f"--as: {args.as_user!r} is not platform:user_id")
    core = _core(args)

    async def once() -> Reply:
        try:
            return await core.handle(Invocation(platform=platform, user_id=user, text=text))
        finally:
            await core.aclose()

    try:
        reply = asyncio.run(once())
    finally:
        core.close()
    print(reply.plain_text())
    return {"ok": EXIT_OK, "error": EXIT_FAILED, "refused": EXIT_REFUSED}[reply.outcome]


def cmd_chat(args: argparse.Namespace) -> int:
    core = _core(args)
    chat = ConsoleChat(core.handle)
    chat.print(
        core.dispatcher.context.tr(
            "Console do nightshift. `ajuda` lista os comandos, `sair` sai.",
            "nightshift console. `help` lists the commands, `exit` leaves.",
        )
    )
    try:
        asyncio.run(chat.run(prompt=sys.stdin.isatty()))
    finally:
        core.close()
    return EXIT_OK


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-07-12") from None


def _today(settings: Settings) -> date:
    return datetime.now(settings.timezone).date()


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    settings: Settings = args.settings
    day = args.date or _today(settings)
    batches: list[tuple[Path, FeedBatch]] = []
    for name in args.paths:
        path = Path(name)
        try:
            batches.append((path, load_file(path, default_date=day, tz=settings.timezone)))
        except FeedError as error:
            raise CliError(f"{error} (nothing was stored)") from None
    core = _core(args)
    total = sum(len(b) for _, b in batches)
    started = time.perf_counter()
    try:
        with tqdm(
            total=total, unit="rows", disable=not sys.stderr.isatty() or total < 10_000
        ) as bar:
            for path, batch in batches:
                bar.set_description(path.name)
                result = core.store.ingest(batch, progress=bar.update)
                print(f"{path}: {result.accepted} rows stored", file=sys.stderr)
    except StorageError as error:
        raise CliError(f"NIGHTSHIFT_DATABASE_URL: {error}") from None
    finally:
        core.close()
    print(
        f"ingested {total} rows from {len(batches)} file(s) in "
        f"{time.perf_counter() - started:.2f}s",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.replay import replay

    settings: Settings = args.settings
    path = Path(args.path)
    try:
        batch = load_file(path, default_date=args.date or _today(settings), tz=settings.timezone)
    except FeedError as error:
        raise CliError(str(error)) from None
    url = args.url or f"http://{settings.host}:{settings.port}/transactions"
    token = settings.webhook_token.value if settings.webhook_token else None
    sent = replay(batch, url, token=token, speed=args.speed)
    print(f"replayed {sent} rows to {url}", file=sys.stderr)
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nightshift", description="Chat-ops bot for the night shift of a payments operation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="the bot: HTTP, chat adapters, scheduler, detector")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("ask", help="run one chat command and print the reply")
    p.add_argument("--as", dest="as_user", metavar="USER", help="platform:user_id")
    p.add_argument("text", nargs=argparse.REMAINDER)
    p.set_defaults(handler=cmd_ask)

    p = sub.add_parser("chat", help="interactive console chat")
    p.set_defaults(handler=cmd_chat)

    p = sub.add_parser("ingest", help="load transaction files (CSV or JSON) into the store")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--date", type=_date, help="date for files whose times have none (HHh MM)")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("replay", help="send a feed file to a running bot, paced")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--url", help="the bot's /transactions URL")
    p.add_argument("--speed", type=float, default=60.0, help="minutes of feed per real minute")
    p.add_argument("--date", type=_date, help="date for files whose times have none")
    p.set_defaults(handler=cmd_replay)

    offline.register(sub)
    runbook_cli.register(sub)
    demo.register(sub)
    jobs_cli.register(sub)
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
        code: int = args.handler(args)
    except (SettingsError, CliError) as error:
        print(f"nightshift: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
