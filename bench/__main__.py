"""`python -m bench` (what `make bench` runs): the figures of issue 8 in docs/benchmarks.md.

    python -m bench [--postgres URL] [--only 1,4] [--seeds 10] [--output docs/benchmarks.md]

PostgreSQL figures run when `--postgres` or NIGHTSHIFT_TEST_POSTGRES_URL names a server: each
use gets a fresh database there, dropped afterwards. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import commands, data, detection, intake, machine, process, servers, webhooks
from bench.postgres import fresh_database
from bench.report import Figure, Report, Section, missing, render

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parent / "NOTES.md"
SQLITE, POSTGRES = "SQLite", "PostgreSQL"
NO_SERVER = "not measured (no server)"

SECTIONS = (
    Section(
        1,
        "Feed intake over HTTP",
        "`POST /transactions` on `serve`, one sender, batches sent back to back (two warm-up "
        "batches not counted), once `serve`'s first detector tick (its one-off warm-up) is "
        "done; every row is a new (minute, status) bucket, or with dimensions "
        "a new combo of one (`bench.data.dimensioned_rows`; the store keeps its count, adds it "
        "to the total and to one marginal per dimension). Baseline: the same rows, batch by "
        "batch, upserted with a raw `executemany` (sqlite3 with the store's pragmas, or "
        "psycopg) in one transaction per batch into one table keyed by the row's minute, status "
        "and dimension values — no HTTP, no parsing, no validation. The two sides alternate "
        "in three rounds (a third of the batches POSTed, then the same rows upserted raw), so "
        "a slow spell of the machine slows both; each rate is its rows over its summed time.",
    ),
    Section(
        2,
        "Alertmanager webhooks",
        f"`POST /webhooks/alertmanager` with {webhooks.SENDERS} concurrent senders, "
        f"{webhooks.PAYLOADS:,} version-4 payloads of 1–3 alerts over 400 fingerprints that "
        "fire and resolve in turn, after 200 warm-up payloads. Baseline: the same payloads and "
        "client against a bare Starlette app on uvicorn (`bench/bare.py`) that reads the body "
        "and answers 200. The client is one process (asyncio on uvloop, prepared HTTP/1.1 "
        "requests on keep-alive connections, answers read by httptools) and shares the 2 cores "
        "with the server: its own CPU time per payload is reported.",
    ),
    Section(
        3,
        "Alert to chat",
        "`serve` configured with the fake Telegram Bot API and fake Slack Web API servers "
        "(`tests/fakes`) while a storm goes on (one Alertmanager group of 300 alerts, 5 more "
        "every half second, so its card always has an edit due); a new critical alert of its "
        "own group and service then arrives every 13 s (the flood cap lets 5 new incidents a "
        "minute have messages of their own). Latency from sending its webhook until the fake "
        "server has its own new message (not an edit, not a thread reply).",
    ),
    Section(
        4,
        "Commands on a 90-day store",
        "90 days x 1440 minutes x 7 statuses (907,200 count rows, from `detector.simulate`, "
        "loaded through `Store.ingest`) plus 360 anomalies, 180 alerts and 6 incidents. Each "
        "command runs through `build_core(...).handle(Invocation(...))` (2 warm-up runs); the "
        "clock stands at the end of the history. Baseline: the same command on an empty store.",
    ),
    Section(
        5,
        "Detector",
        "The live tick is `bot.watch.FeedWatch.tick()` on the 90-day store, one closed minute "
        "at a time over its last hour. `detect` scores a million-row series. `analyze` reads "
        "`tests/data/transactions.csv` (one day per minute). The quality tables are "
        "`bench.quality.quality_table()` (the feed) and `bench.corpus.table()` (`detect` on "
        "the labelled corpus).",
    ),
    Section(
        6,
        "The process",
        "`python -m bot serve` started as a subprocess, three times; time from `Popen` to the "
        "first `/healthz` 200 (median). On the last start, VmRSS from /proc after the first "
        "detector tick (`nightshift_detector_runs_total` > 0 in `/metrics`; that tick warms the "
        "engine on 28 days of history) once memory has been still for a second. Baseline: the "
        "bare Starlette/uvicorn app.",
    ),
)


class _Elapsed(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("[%(elapsed)6.1fs] %(message)s")
        self.started = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        record.elapsed = time.monotonic() - self.started
        return super().format(record)


@contextlib.contextmanager
def fresh(store: str, purpose: str, workdir: Path, pg_url: str | None) -> Iterator[str]:
    """An empty database on `store`: a new SQLite file, or a new PostgreSQL database."""
    if store == SQLITE:
        yield f"sqlite:///{workdir / f'{purpose}-{time.monotonic_ns()}.db'}"
    else:
        assert pg_url is not None
        with fresh_database(pg_url, purpose) as url:
            yield url


class Run:
    """One `make bench`: the figures so far and what each step needs."""

    def __init__(self, workdir: Path, pg_url: str | None, only: set[int], seeds: int) -> None:
        self.workdir = workdir
        self.pg_url = pg_url
        self.only = only
        self.seeds = seeds
        self.figures: list[Figure] = []
        self.extra: dict[int, str] = {}
        self.stores = [SQLITE, POSTGRES] if pg_url else [SQLITE]
        self.now = datetime.now(UTC)

    def wanted(self, section: int) -> bool:
        return not self.only or section in self.only

    def step(self, section: int, what: str, body: Callable[[], list[Figure]]) -> None:
        """Run one measurement; a failure becomes a row saying so, and the run goes on."""
        log.info("§%d %s", section, what)
        try:
            self.figures.extend(body())
        except Exception as error:
            log.error("§%d %s failed:\n%s", section, what, traceback.format_exc())
            reason = f"failed in this run: {type(error).__name__}: {error}"[:300]
            self.figures.append(missing(section, what, "—", reason))

    def no_postgres(self, section: int) -> None:
        if not self.pg_url:
            row = missing(section, "all figures of this section", POSTGRES, NO_SERVER)
            self.figures.append(row)

    # ---------------------------------------------------------------------- the figures

    def intake(self) -> None:
        for store in self.stores:

            def body(store: str = store) -> list[Figure]:
                with (
                    fresh(store, "intake", self.workdir, self.pg_url) as url,
                    fresh(store, "raw", self.workdir, self.pg_url) as raw,
                ):
                    return intake.measure(url, raw, store, self.workdir)

            self.step(1, f"feed intake ({store})", body)
        self.no_postgres(1)

    def webhooks(self) -> None:
        log.info("§2 bare endpoint baseline")
        with servers.bare(self.workdir) as bare:
            baseline = webhooks.bare_webhooks(bare.url, self.workdir)
        for store in self.stores:

            def body(store: str = store) -> list[Figure]:
                with fresh(store, "webhooks", self.workdir, self.pg_url) as url:
                    return webhooks.measure_webhooks(url, store, self.workdir, baseline)

            self.step(2, f"Alertmanager webhooks ({store})", body)
        self.no_postgres(2)

    def chat(self) -> None:
        for store in self.stores:

            def body(store: str = store) -> list[Figure]:
                with fresh(store, "chat", self.workdir, self.pg_url) as url:
                    return webhooks.measure_chat(url, store, self.workdir)

            self.step(3, f"alert to chat ({store})", body)
        self.no_postgres(3)

    def history(self) -> None:
        """Sections 4, 5 (live tick) and 6 (with the 90-day store), on each store."""
        log.info("90-day store: cached SQLite file (built on first use of the day)")
        cached = data.cached_history(self.now)
        self.figures.append(
            Figure(
                1,
                f"bulk `Store.ingest` of the 90-day history ({cached.rows:,} count rows, "
                "one call, no HTTP; when the cache was built)",
                SQLITE,
                cached.rows / cached.ingest_seconds,
                "rows/s",
            )
        )
        bare = process.bare(self.workdir) if self.wanted(6) else None
        if bare is not None:
            self.step(
                6,
                "serve with an empty store",
                lambda: process.measure(
                    "empty store",
                    SQLITE,
                    lambda: f"sqlite:///{self.workdir / f'empty-{time.monotonic_ns()}.db'}",
                    self.workdir,
                    bare,
                ),
            )
        for store in self.stores:
            with contextlib.ExitStack() as stack:
                if store == SQLITE:
                    url = data.copy_history(cached, self.workdir)
                    empty = f"sqlite:///{self.workdir / f'empty-{time.monotonic_ns()}.db'}"
                    history_url = functools.partial(data.copy_history, cached, self.workdir)
                else:
                    assert self.pg_url is not None
                    url = stack.enter_context(fresh_database(self.pg_url, "history"))
                    empty = stack.enter_context(fresh_database(self.pg_url, "empty"))
                    log.info("90-day store: loading it into PostgreSQL through Store.ingest")
                    took = data.fill(url, cached.end)
                    self.figures.append(
                        Figure(
                            1,
                            f"bulk `Store.ingest` of the 90-day history ({cached.rows:,} count "
                            "rows, one call, no HTTP)",
                            POSTGRES,
                            cached.rows / took,
                            "rows/s",
                        )
                    )
                    history_url = functools.partial(str, url)
                self._on_history(store, url, empty, history_url, cached.end, bare)
        for section in (4, 5, 6):
            if self.wanted(section):
                self.no_postgres(section)

    def _on_history(
        self,
        store: str,
        url: str,
        empty: str,
        history_url: Callable[[], str],
        end: datetime,
        bare: process.Bare | None,
    ) -> None:
        if self.wanted(4):
            self.step(4, f"commands ({store})", lambda: commands.measure(url, empty, store, end))
        if self.wanted(5):
            self.step(5, f"live tick ({store})", lambda: detection.live_tick(url, store, end))
        if bare is not None:
            self.step(
                6,
                f"serve with the 90-day store ({store})",
                lambda: process.measure("90-day store", store, history_url, self.workdir, bare),
            )

    def detector(self) -> None:
        self.step(5, "detect", lambda: detection.detect(self.workdir))
        self.step(5, "analyze", detection.analyze)
        log.info("§5 quality table (%d seeds)", self.seeds)
        self.table(
            "Quality table",
            lambda: importlib.import_module("bench.quality").quality_table(self.seeds),
            lambda took: (
                "Detection quality (issue 4's table, `bench/quality.py`, "
                f"{took:.0f} s): precision, recall and F1 of episodes against labeled "
                "incidents; nightshift judges each minute only from the past, the PyOD and "
                "ADTK peers are fitted on the whole file."
            ),
        )
        log.info("§5 slices: quality on dimensioned feeds, the tick with 100 slices")
        self.table(
            "Slices table",
            self.slices_tables,
            lambda took: (
                "Slices (issue 15, `bench/slices.py`, "
                f"{took:.0f} s): {self.seeds} simulated dimensioned feeds, 8 days of clean "
                "history then a day with an acquirer down, a brand's denials surging and a slice "
                "degrading (5 dimensions, 58 slices); a slice incident is named by a slice "
                "finding on it or by a total finding whose drill-down names it; every episode "
                "overlapping no incident is a false alarm."
            ),
        )
        log.info("§5 the labelled corpus: detect and its peers")
        self.table(
            "Corpus table",
            lambda: importlib.import_module("bench.corpus").table(),
            lambda took: (
                "`nightshift detect` on the labelled corpus (`detector/corpus.py`, "
                f"`bench/corpus.py`, {took:.0f} s), scored the windowed way "
                "(`detector.evaluation.score_windows`): a window of 10% of the series shared "
                "among its anomalies around each one, the earliest detection in a window earns "
                "up to 1 on a sigmoid, a missed window costs 1, a detection outside every window "
                "0.11; the first 15% of each series (at most 750 rows) is not counted. The peers' "
                "runs of flags are folded into one detection each, as `detect`'s are; PyOD, "
                "stumpy and ruptures see the whole series at once."
            ),
        )

    def slices_tables(self) -> str:
        slices = importlib.import_module("bench.slices")
        return str(
            slices.quality_table(self.seeds)
            + "\n\nThe live tick: `SliceWatch.step` with 5 dimensions x 20 values after a "
            "warm-up on 28 days (the live bot's history), beside the total engine.\n\n"
            + slices.tick(28)
        )

    def table(self, name: str, make: Callable[[], str], intro: Callable[[float], str]) -> None:
        """One of §5's tables, after what the section has so far: its introduction (told how
        long the table took) and the table; a table that fails says so in its place. Its
        module is imported by `make`, so a missing peer library fails that table only."""
        before = self.extra.get(5, "")
        try:
            started = time.perf_counter()
            text = make()
            text = intro(time.perf_counter() - started) + "\n\n" + text
        except Exception as error:
            log.error("%s failed:\n%s", name.lower(), traceback.format_exc())
            text = f"{name}: failed in this run ({type(error).__name__}: {error})"
        self.extra[5] = f"{before}\n\n{text}" if before else text

    def run(self) -> None:
        if self.wanted(1):
            self.intake()
        if self.wanted(2):
            self.webhooks()
        if self.wanted(3):
            self.chat()
        if self.wanted(4) or self.wanted(5) or self.wanted(6):
            self.history()
        if self.wanted(5):
            self.detector()


def _sections(text: str) -> set[int]:
    try:
        chosen = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 1,4") from None
    if not chosen <= {s.number for s in SECTIONS}:
        raise argparse.ArgumentTypeError(f"{text!r}: sections are 1 to {len(SECTIONS)}")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("NIGHTSHIFT_TEST_POSTGRES_URL") or None,
        metavar="URL",
        help="PostgreSQL server to measure on (default: NIGHTSHIFT_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--only", type=_sections, default=set(), help="sections, e.g. 1,4")
    parser.add_argument("--seeds", type=int, default=10, help="simulated feeds, quality table")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    log.setLevel(logging.INFO)
    for name in ("bench.intake", "bench.webhooks", "bench.commands", "bench.data"):
        logging.getLogger(name).setLevel(logging.INFO)

    started = time.monotonic()
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="nightshift-bench-") as folder:
        run = Run(Path(folder), args.postgres, args.only, args.seeds)
        log.info("nightshift bench: work in %s; PostgreSQL: %s", folder, args.postgres or "none")
        run.run()
    report = Report(
        machine=machine.describe(args.postgres, started_at),
        sections=[s for s in SECTIONS if run.wanted(s.number)],
        figures=run.figures,
        extra=run.extra,
        seconds=time.monotonic() - started,
        command="make bench" if not args.only else f"python -m bench --only {args.only}",
    )
    text = render(report)
    if NOTES.exists():
        text += "\n" + NOTES.read_text()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log.info("wrote %s in %.0f s", args.output, time.monotonic() - started)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
