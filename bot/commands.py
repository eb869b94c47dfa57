"""The store-backed sub-commands: `serve`, `ask`, `chat`, `ingest` and `replay`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date, datetime
from pathlib import Path

from bot.app import App, Core, build_core
from bot.console import ConsoleChat, login_name
from bot.errors import CliError
from bot.settings import Settings
from runbooks.errors import RunbookConfigError
from skills.core import Invocation, Reply
from storage.parsing import FeedBatch, FeedError, load_file
from storage.store import StorageError

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 3


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
    core = _core(args)
    app = App(core)
    print(
        f"nightshift listening on http://{settings.host}:{settings.port} "
        f"(store {core.store.dialect}, {settings.database_url.split('://')[0]})",
        file=sys.stderr,
    )
    try:
        app.run_server()  # the store closes with the app, at the end of its lifespan
    except OSError as error:
        raise CliError(
            f"NIGHTSHIFT_PORT: cannot listen on {settings.host}:{settings.port} ({error.strerror})"
        ) from None
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
            batch = load_file(
                path, default_date=day, tz=settings.timezone, dimensions=settings.dimensions
            )
            batches.append((path, batch))
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
                result = core.store.ingest(batch, progress=bar.update, slice_top=settings.slice_top)
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
        batch = load_file(
            path,
            default_date=args.date or _today(settings),
            tz=settings.timezone,
            dimensions=settings.dimensions,
        )
    except FeedError as error:
        raise CliError(str(error)) from None
    url = args.url or f"http://{settings.host}:{settings.port}/transactions"
    token = settings.webhook_token.value if settings.webhook_token else None
    sent = replay(batch, url, token=token, speed=args.speed)
    print(f"replayed {sent} rows to {url}", file=sys.stderr)
    return EXIT_OK
