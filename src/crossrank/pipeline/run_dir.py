"""A training run's output directory: one writer at a time, no model replaced by accident, and
a resume that continues the same run.

**One writer.** :class:`RunDirLock` holds an exclusive ``fcntl.flock`` on ``OUT/train.lock``
for the whole run (under DDP rank 0 holds it for all ranks, which share the directory); the
file names the holder (pid, host, start time), so a second training into the same directory
stops at once with one line naming the directory and that pid. ``flock`` rather than creating
the file with ``O_EXCL``: the kernel drops the lock the moment its process ends, however it
ends (``kill -9``, a crash, the machine rebooting), so a lock left by a process that is gone
is no lock, and the next run takes it over without guessing from a pid, which may have been
reused, or belong to another host that cannot be asked. Linux's NFS client takes flock locks
on the server, so they hold between machines too. Where the file system has no locks at all
(Lustre mounted without ``flock``) the run goes on unlocked after a warning.

**No silent replacement.** A fresh run into a directory that holds a model (``model.json``,
weights or resume state) is refused unless ``overwrite``; then the old run's files are removed
first (the resume state first), so an interrupted overwrite never leaves a mix of two runs.

**Resume continues the same run.** The saved run's configuration (``model.json``'s
``run_config``) is compared with the new one; only the options of :data:`RESUMABLE` may differ
(how long and how visibly it trains, and where: they change no weight already learned). Any
other difference is refused with one line naming each option, because the resumed state would
silently ignore it (the data and encoder are reused from the cache) or contradict it (another
optimizer, another embedding size).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigError, RunDirError

LOCK_FILE = "train.lock"
# options a resumed run may change: how long and how visibly it trains, and on what device
RESUMABLE = ("training.epochs", "training.patience", "training.progress", "training.threads",
             "training.device", "data.keep_parsed_mb")
# files of a trained run (their presence means "holds a model"), resume state first
RUN_STATE = ("state.json", "state.safetensors", "latest.safetensors", "model.json",
             "model.safetensors")
# removed with them by --overwrite: the old run's log, configuration and generated data
RUN_EXTRAS = ("metrics.jsonl", "run.toml", "synthetic_train.tsv")
# the refit's own directory (training.refit: crossrank.pipeline.refit), removed by a fresh run
REFIT_DIR = "refit"


class RunDirLock:
    """An exclusive lock on a run directory (see the module doc); a context manager.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with RunDirLock(d):
        ...     try:
        ...         RunDirLock(d).acquire()
        ...     except RunDirError as err:
        ...         print("another training is writing" in str(err))
        True
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock, or raise :class:`RunDirError` naming the holder. Returns the holder
        named in a lock file left by a process that ended without releasing it, else None."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no flock
            print(f"warning: {self.directory}: not locked (no fcntl on this system)")
            return None
        if self._fd is not None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EAGAIN, errno.EACCES):
                    raise RunDirError(
                        f"{self.directory}: another training is writing into this directory "
                        f"({self._holder(wait=True) or 'holder unknown'}); wait for it to end, "
                        "or give another --out") from None
                if err.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
                    print(f"warning: {self.directory}: not locked (the file system takes no "
                          f"locks: {err.strerror}); make sure no other training writes there")
                    return None
                raise
            try:  # the holder before us may have removed the file between our open and lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = self._holder(wait=False)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(record).encode())
        self._fd = fd
        return stale

    def _holder(self, *, wait: bool) -> str | None:
        """Who the lock file names; with ``wait``, give a holder that has just taken the lock
        up to a second to write its name."""
        for _ in range(20 if wait else 1):
            try:
                record = json.loads(self.path.read_text())
                return f"pid {record['pid']} on {record['host']}, since {record['since']}"
            except (OSError, ValueError, KeyError, TypeError):
                if wait:
                    time.sleep(0.05)
        return None

    def release(self) -> None:
        """Remove the lock file and let the lock go (a no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still holding it: nobody locks a file about to vanish
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_run_dir(out: Path, lock: RunDirLock, *, resume: bool, overwrite: bool) -> str | None:
    """Lock ``out`` and check it holds what the run needs: the state of a run to resume, or
    no model unless ``overwrite`` (whose old files are then removed). Returns the holder of
    a stale lock that was taken over, if any."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: "
                          "give one of them")
    stale = lock.acquire()
    if resume:
        if not (out / "state.json").is_file():
            raise RunDirError(f"{out}: nothing to resume (no state.json: no epoch of a run "
                              "ended there); train without --resume")
        return stale
    found = [name for name in sorted(RUN_STATE, key=lambda n: not n.startswith("model."))
             if (out / name).exists()]
    if found and not overwrite:
        raise RunDirError(f"{out} already holds a trained model ({found[0]}); give --overwrite "
                          "to replace it, --resume to continue it, or another --out")
    # a fresh run: no refit state of an old run may be taken for this one's (first: the
    # record of a finished first pass would otherwise outlive the state it belongs to)
    shutil.rmtree(out / REFIT_DIR, ignore_errors=True)
    for name in RUN_STATE + RUN_EXTRAS if overwrite else ():
        (out / name).unlink(missing_ok=True)
    return stale


def saved_run_config(out: str | Path) -> dict[str, Any] | None:
    """The ``run_config`` of ``out/model.json`` (None when there is no model.json); a
    damaged model.json is one ModelFileError line."""
    from crossrank.safe_io import file_error
    from crossrank.train.checkpoint import read_model_json

    path = Path(out)
    if not (path / "model.json").is_file():
        return None
    meta = read_model_json(path)
    saved = meta.get("run_config")
    if not isinstance(saved, dict):
        raise file_error(path / "model.json", KeyError("run_config"))
    return saved


def check_resume(out: Path, new: dict[str, Any]) -> None:
    """Refuse to resume the run in ``out`` with the configuration ``new`` (a resolved
    RunConfig's ``to_dict()``) when it differs from the saved one in an option that is not
    :data:`RESUMABLE` (one line naming each), or when a file model.json records the SHA-256
    of (the encoder's, which resuming reuses, and the best weights) has changed."""
    from crossrank.pipeline.run_config import build_run_config
    from crossrank.train.checkpoint import read_model_json, verify_checksums

    saved = saved_run_config(out)
    if saved is None:
        raise RunDirError(f"{out}: no model.json to resume from; train without --resume")
    verify_checksums(out, read_model_json(out), meta_path=out / "model.json")
    try:  # through today's config: options added since then take their defaults
        saved = build_run_config(saved).to_dict()
    except ConfigError as err:
        raise RunDirError(f"{out / 'model.json'}: its run_config is not one this version reads "
                          f"({err}); start a new run") from None
    if saved["training"]["ema_decay"] is None:
        # runs write the decay their task chose (0: none); a run that wrote none is older
        # than that default and did not average (none meant no average then)
        saved["training"]["ema_decay"] = 0.0
    changed = changed_options(saved, json.loads(json.dumps(new)))
    if changed:
        raise RunDirError("cannot resume with changed options: " + ", ".join(changed)
                          + " (only " + ", ".join(RESUMABLE) + " may change); start a new run "
                          "(another --out) or replace this one (--overwrite)")


def changed_options(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key old -> new"`` for every option that differs, except :data:`RESUMABLE`; the
    options of two model families are not compared, only their names.

    Example:
        >>> changed_options({"training": {"lr": 0.001, "epochs": 1}, "model": {"name": "dcn"}},
        ...                 {"training": {"lr": 0.01, "epochs": 3}, "model": {"name": "dcn"}})
        ['training.lr 0.001 -> 0.01']
    """
    old, now = dict(_flatten(saved)), dict(_flatten(new))
    other_family = old.get("model.name") != now.get("model.name")
    out = []
    for key in sorted(set(old) | set(now), key=_section_order):
        if key in RESUMABLE or (other_family and key.startswith("model.")
                                and key not in ("model.name", "model.embedding_dim")):
            continue
        if old.get(key) != now.get(key):
            out.append(f"{key} {_show(old.get(key))} -> {_show(now.get(key))}")
    return out


def _section_order(key: str) -> tuple[int, str]:
    order = ("data", "schema", "encoder", "model", "training")
    section = key.split(".")[0]
    return (order.index(section) if section in order else len(order), key)


def _flatten(tree: dict[str, Any], prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool | list | dict):
        return json.dumps(value)
    return str(value)
