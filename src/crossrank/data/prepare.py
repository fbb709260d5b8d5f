"""Preparing the data to train on: fit the encoder and encode the rows into the binary cache,
shared out by file among data-parallel ranks.

``out/encoder`` and ``out/cache`` are what one process writes from the files of ``--data`` in
order. Under DDP with W ranks the sorted files are cut into W contiguous ranges balanced by
size (:func:`~crossrank.distributed.assign_files`), and each rank parses only its range:

1. fit: each rank collects its files' :class:`~crossrank.data.FitStats` (value counts, exact
   dense sums) and writes them to ``out/cache.parts/rank{r}/stats``; rank 0 merges them
   (:meth:`~crossrank.data.FeatureEncoder.fit_from_stats`: the encoder of one fit over all
   files, bit for bit) and saves ``out/encoder``; the other ranks load it;
2. encode: each rank encodes its files into ``out/cache.parts/rank{r}/cache`` (skipped rows
   into ``rejects.jsonl`` beside it); rank 0 joins the parts in rank order, which is file
   order, into ``out/cache`` and the one rejects file with sequential copies
   (:func:`~crossrank.data.cache.concatenate_caches`) and removes ``out/cache.parts``.

When one rank has all the files (a single file, or W = 1) it writes ``out/cache`` and the
rejects file directly, and the others wait. The parts travel through files, so ``out`` must be
on a file system all ranks share (as ``--resume`` under DDP needs anyway).

Failures: the steps are separated by :func:`~crossrank.distributed.agree`, a collective at
which every rank learns whether any rank failed; all then raise the first failure in rank
order, which is the first bad row in file order with ``--on-bad-rows error``, the message one
process would give. No rank is left waiting at a barrier for a rank that has stopped.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pyarrow as pa

from crossrank.data.cache import concatenate_caches, encode_to_cache
from crossrank.data.config import EncoderConfig
from crossrank.data.dataset import EncodedDataset
from crossrank.data.encoders import FeatureEncoder
from crossrank.data.files import Format
from crossrank.data.fit_stats import FitStats
from crossrank.data.readers import OnBadRows, iter_tables, list_shards
from crossrank.data.rejects import RejectsLog, concatenate_rejects, summarize
from crossrank.data.replay import REPLAY_BYTES, ReplayedTables
from crossrank.data.schema import TableSchema
from crossrank.distributed import all_reduce_sum, assign_files, current_context, run_agreed
from crossrank.errors import REASONS

PARTS_DIR = "cache.parts"


# the encoder section of a run's configuration; the old name stays importable
EncoderOptions = EncoderConfig


def prepare_data(*, data: str, fmt: str, schema: TableSchema, options: EncoderConfig,
                 out: Path, on_bad_rows: str, rejects_path: str | Path | None, resume: bool,
                 log: Callable[[str], Any], keep_parsed_mb: int = REPLAY_BYTES >> 20,
                 report_rejects: bool = True) -> tuple[FeatureEncoder, EncodedDataset]:
    """Fit the encoder on ``data`` and encode it into ``out/cache`` (see the module doc); a
    rank's files whose parsed rows fit in ``keep_parsed_mb`` MiB are parsed once
    (:mod:`crossrank.data.replay`).

    With ``resume`` and an encoder and a cache in ``out`` on every rank, they are opened
    instead (same ids, same rows, no re-parse). Returns the encoder and the cache, the same
    on every rank. ``report_rejects=False``: no line for skipped bad rows (a second encoding
    of rows already reported).
    """
    world = current_context()
    encoder_dir, cache_dir, work = out / "encoder", out / "cache", out / PARTS_DIR
    if resume:
        here = (encoder_dir / "encoder.json").is_file() and (cache_dir / "manifest.json").is_file()
        if all_reduce_sum([float(here)])[0] == world.world_size:
            return FeatureEncoder.load(encoder_dir), EncodedDataset.open(cache_dir)
    files = list_shards(data)
    ranges = assign_files([f.stat().st_size for f in files], world.world_size)
    mine = files[slice(*ranges[world.rank])]
    writers = [r for r, (lo, hi) in enumerate(ranges) if hi > lo]
    alone = len(writers) == 1  # one rank encodes everything: straight into out/cache
    skip = on_bad_rows == "skip"
    rejects_file = Path(rejects_path) if rejects_path else out / "rejects.jsonl"
    part = work / f"rank{world.rank}"
    if world.is_distributed and world.is_main:
        log(f"encoding {len(files)} file(s) on {len(writers)} of {world.world_size} ranks")

    def tables(rejects: RejectsLog | None) -> Iterator[pa.Table]:
        for file in mine:
            yield from iter_tables(file, fmt=cast(Format, fmt), schema=schema,
                                   on_bad_rows=cast(OnBadRows, on_bad_rows), rejects=rejects)

    encoder = FeatureEncoder(schema, **options.encoder_options())
    # rows parsed by the fit pass are replayed to the encode pass when they fit in memory
    # (not when skipping bad rows: the fit pass sees the bad rows, only the encode pass
    # records them)
    parsed = None if skip or not keep_parsed_mb else \
        ReplayedTables(lambda: tables(None), budget=keep_parsed_mb << 20)

    def fit_part() -> FitStats:
        stats = encoder.partial_fit(parsed if parsed is not None else tables(RejectsLog()))
        if world.is_distributed and mine:
            stats.save(part / "stats")
        return stats

    stats = run_agreed(fit_part)

    def combine() -> None:
        if world.is_main:
            parts = [stats] if not world.is_distributed else \
                [FitStats.load(work / f"rank{r}" / "stats") for r in writers]
            encoder.fit_from_stats(parts)
            encoder.save(encoder_dir)

    run_agreed(combine)
    if not world.is_main:
        encoder = FeatureEncoder.load(encoder_dir)

    def encode_part() -> dict[str, int]:
        if not mine:
            return {}
        rejects = RejectsLog(rejects_file if alone else part / "rejects.jsonl") if skip else None
        try:
            source = parsed if parsed is not None else tables(rejects)
            encode_to_cache(source, encoder, cache_dir if alone else part / "cache",
                            overwrite=True)
        finally:
            if rejects is not None:
                rejects.close()
        return {} if rejects is None else rejects.counts

    counts = run_agreed(encode_part)
    if skip:  # every rank's counts, by reason
        total = all_reduce_sum([float(counts.get(r, 0)) for r in REASONS])
        counts = {r: int(n) for r, n in zip(REASONS, total) if n}

    def join() -> None:
        if world.is_main and not alone:
            concatenate_caches([work / f"rank{r}" / "cache" for r in writers], cache_dir,
                               overwrite=True)
            if skip:
                concatenate_rejects([work / f"rank{r}" / "rejects.jsonl" for r in writers],
                                    rejects_file)
        if world.is_main and work.exists():
            shutil.rmtree(work)

    run_agreed(join)
    if counts and world.is_main and report_rejects:
        print(f"skipped {sum(counts.values())} bad rows ({summarize(counts)}); see {rejects_file}")
    return encoder, EncodedDataset.open(cache_dir)
