"""``crossrank train`` on 2 gloo processes encodes by file shard: each rank parses only its own
files, and the encoder, the cache, the rejects and the trained model are those of one process
on the same files. A bad row on any rank stops every rank with the one-process message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from launch import run_ranks, transcript
from safetensors.numpy import load_file

from crossrank.cli import main as cli_main
from crossrank.data import criteo_schema, write_synthetic
from crossrank.data.prepare import PARTS_DIR, EncoderOptions, prepare_data
from crossrank.distributed import assign_files
from tolerances import TOLERANCES

WORKER = Path(__file__).with_name("train_worker.py")
SHARD_ROWS = (2000, 3500, 2500, 3000)  # by bytes: rank 0 gets shards 0-1, rank 1 shards 2-3
ARGS = ["--format", "criteo", "--epochs", "1", "--batch-size", "256", "--embedding-dim", "4",
        "--model-option", "cross.rank=2", "--model-option", "deep_layers=[8]", "--threads", "1",
        "--no-progress", "--seed", "0",
        # the defaults before 2026-12-01: no dropout (its masks differ between 1 and 2
        # processes), no embedding L2, dense embedding gradients, 3 cross layers
        "--model-option", "dropout=0", "--model-option", "embedding_l2=0",
        "--model-option", "sparse_gradients=false", "--model-option", "cross.num_layers=3",
        # SGD: float rounding between 1 and 2 processes stays rounding (Adam's normalisation
        # would blow it up for embedding rows with tiny gradients)
        "--optimizer", "sgd", "--lr", "0.1"]


def write_shards(directory: Path, bad: dict[int, list[int]]) -> list[Path]:
    """Synthetic Criteo TSV shards; in shard k, the lines ``bad[k]`` (1-based) get the
    non-numeric dense value 'abc' in column I3 (the first) or too few fields (the others)."""
    directory.mkdir(parents=True)
    paths = []
    for k, rows in enumerate(SHARD_ROWS):
        path = directory / f"part-{k:05d}.tsv"
        write_synthetic(path, rows, fmt="criteo", seed=10 + k)
        lines = path.read_text().splitlines()
        for i, number in enumerate(bad.get(k, [])):
            fields = lines[number - 1].split("\t")
            lines[number - 1] = "\t".join(fields[:3] + ["abc"] + fields[4:]) if i == 0 \
                else "1\t2\t3"
        path.write_text("".join(line + "\n" for line in lines))
        paths.append(path)
    return paths


def train_on_two_ranks(tmp_path: Path, name: str, argv: list[str], timeout: float = 120
                       ) -> list[dict]:
    reports = tmp_path / f"reports-{name}"
    reports.mkdir()
    results = run_ranks(WORKER, [str(reports), *argv], timeout=timeout)
    out = []
    for rank, (code, text) in enumerate(results):
        path = reports / f"rank{rank}.json"
        # a rank that crashed or raised wrote no report: its output says why
        assert path.exists(), f"rank {rank} wrote no report\n{transcript(results)}"
        report = json.loads(path.read_text())
        assert report["code"] == code, f"rank {rank} exited {code} after returning " \
            f"{report['code']}:\n{text}"
        # `crossrank train` ended the group, on success and on failure: no thread of it is
        # left to abort the process at exit
        assert not report["group_threads"], f"rank {rank}: {report['group_threads']}"
        out.append({**report, "output": text})
    return out


def train_in_this_process(argv: list[str]) -> int:
    threads = torch.get_num_threads()
    try:
        return cli_main(["train", *argv])
    finally:
        torch.set_num_threads(threads)  # --threads 1 must not outlive the run


def same_bytes(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a.name}/{name}"


def test_two_ranks_encode_their_own_shards_into_the_one_process_files(tmp_path, capsys):
    data = tmp_path / "shards"
    files = write_shards(data, bad={1: [5, 40], 3: [7]})
    extra = ["--data", str(data), "--on-bad-rows", "skip", "--dense-transform", "standardize",
             "--min-count", "2", *ARGS]
    ranks = train_on_two_ranks(tmp_path, "ddp", ["--out", str(tmp_path / "ddp"), *extra])
    for rank in ranks:
        assert rank["code"] == 0, rank["output"]
    # each rank parsed its own contiguous, size-balanced range of the files, and only it
    ranges = assign_files([f.stat().st_size for f in files], 2)
    assert ranges == [(0, 2), (2, 4)]
    for rank, (lo, hi) in zip(ranks, ranges):
        assert rank["parsed"] == [f.name for f in files[lo:hi]]

    capsys.readouterr()
    assert train_in_this_process(["--out", str(tmp_path / "one"), *extra]) == 0
    one_output = capsys.readouterr().out
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    # the encoder (vocabularies with min_count 2 over all shards, standardize's mean and
    # std) and the cache are byte for byte the one-process files; no scratch is left
    same_bytes(ddp / "encoder", one / "encoder")
    same_bytes(ddp / "cache", one / "cache")
    assert not (ddp / PARTS_DIR).exists()
    # the rejects of both ranks, in file order, in one file; the reported total is theirs
    rejects = [json.loads(line) for line in (ddp / "rejects.jsonl").read_text().splitlines()]
    assert [(Path(r["file"]).name, r["line"]) for r in rejects] == [
        ("part-00001.tsv", 5), ("part-00001.tsv", 40), ("part-00003.tsv", 7)]
    assert (ddp / "rejects.jsonl").read_bytes() == (one / "rejects.jsonl").read_bytes()
    assert "skipped 3 bad rows (2 non-numeric value in a numeric column, 1 wrong number of " \
        "fields)" in ranks[0]["output"]
    assert "skipped 3 bad rows" in one_output and "skipped" not in ranks[1]["output"]
    # training on it follows the one-process run up to float rounding
    rtol, atol = TOLERANCES[torch.float32]
    mine, ref = load_file(ddp / "model.safetensors"), load_file(one / "model.safetensors")
    assert mine.keys() == ref.keys()
    for name, value in ref.items():
        np.testing.assert_allclose(mine[name], value, rtol=rtol, atol=atol, err_msg=name)
    got, want = (json.loads((d / "metrics.jsonl").read_text().splitlines()[0])["valid"]
                 for d in (ddp, one))
    assert got["rows"] == want["rows"] == (sum(SHARD_ROWS) - 3) // 10
    assert got["auc"] == pytest.approx(want["auc"], rel=rtol, abs=atol)


@pytest.mark.parametrize("bad", [{3: [7]}, {1: [30], 3: [7]}], ids=["rank1", "both-ranks"])
def test_a_bad_row_on_any_rank_stops_every_rank_with_the_one_process_error(tmp_path, capsys,
                                                                            bad):
    data = tmp_path / "shards"
    write_shards(data, bad=bad)
    argv = ["--data", str(data), *ARGS]
    capsys.readouterr()
    assert train_in_this_process(["--out", str(tmp_path / "one"), *argv]) == 2
    expected = capsys.readouterr().err.strip()
    first = min(bad)  # the first bad row in file order
    assert expected == (f"crossrank train: error: {data / f'part-{first:05d}.tsv'} line "
                        f"{bad[first][0]}, column I3: non-numeric dense value 'abc'")
    # within the timeout (a rank left waiting at a barrier would raise TimeoutError here)
    ranks = train_on_two_ranks(tmp_path, "ddp", ["--out", str(tmp_path / "ddp"), *argv],
                               timeout=60)
    for rank in ranks:
        assert rank["code"] == 2, rank["output"]
        assert rank["output"].strip().splitlines()[-1] == expected
    assert not (tmp_path / "ddp" / "cache" / "manifest.json").exists()


def test_one_file_is_encoded_by_one_rank_and_resume_reuses_it(tmp_path):
    data = write_shards(tmp_path / "shards", bad={})[1]
    argv = ["--data", str(data), *ARGS]
    first = train_on_two_ranks(tmp_path, "first", ["--out", str(tmp_path / "ddp"), *argv])
    assert [r["code"] for r in first] == [0, 0], first[0]["output"] + first[1]["output"]
    assert sorted(r["parsed"] for r in first) == [[], [data.name]]  # one rank, the file once
    one = tmp_path / "one"
    prepare_data(data=str(data), fmt="criteo", schema=criteo_schema(), options=EncoderOptions(),
                 out=one, on_bad_rows="error", rejects_path=None, resume=False, log=print)
    same_bytes(tmp_path / "ddp" / "encoder", one / "encoder")
    same_bytes(tmp_path / "ddp" / "cache", one / "cache")
    stamp = (tmp_path / "ddp" / "cache" / "dense.npy").stat().st_mtime_ns
    resumed = train_on_two_ranks(tmp_path, "resumed", [
        "--out", str(tmp_path / "ddp"), *argv, "--resume", "--epochs", "2"])
    assert [r["code"] for r in resumed] == [0, 0], resumed[0]["output"] + resumed[1]["output"]
    assert [r["parsed"] for r in resumed] == [[], []]  # encoder and cache reused, no parse
    assert (tmp_path / "ddp" / "cache" / "dense.npy").stat().st_mtime_ns == stamp
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_files_are_assigned_in_order_in_balanced_contiguous_ranges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(0, 1000, rng.integers(1, 12)).tolist()
        world = int(rng.integers(1, 6))
        ranges = assign_files(sizes, world)
        assert len(ranges) == world and ranges[0][0] == 0 and ranges[-1][1] == len(sizes)
        assert all(a[1] == b[0] and a[0] <= a[1] for a, b in zip(ranges, ranges[1:]))
        # balance: a rank's bytes exceed an even share by less than its largest file
        weights = [s + 1 for s in sizes]
        for lo, hi in ranges:
            if hi > lo:
                assert sum(weights[lo:hi]) < sum(weights) / world + max(weights[lo:hi])
    assert assign_files([7] * 8, 2) == [(0, 4), (4, 8)]
    assert assign_files([0, 0, 0], 4) == [(0, 1), (1, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="world_size"):
        assign_files([1], 0)
    with pytest.raises(ValueError, match="sizes"):
        assign_files([-1], 2)


def test_a_failure_travels_between_ranks_as_the_same_error():
    import json as json_module

    from crossrank.data import BadInputError
    from crossrank.distributed.agreement import _describe, _rebuild

    def travel(error: Exception) -> Exception:  # what agree() sends and rebuilds, as JSON
        return _rebuild(json_module.loads(json_module.dumps(_describe(error))), 1)

    bad = BadInputError("non-numeric dense value 'abc'", file="d/part-3.tsv", line=7,
                        column="I3", reason="non_numeric")
    got = travel(bad)
    assert isinstance(got, BadInputError) and str(got) == str(bad)
    assert (got.file, got.line, got.column, got.reason) == ("d/part-3.tsv", 7, "I3", "non_numeric")
    got = travel(FileNotFoundError("no data files in 'x'"))
    assert type(got) is FileNotFoundError and str(got) == "no data files in 'x'"
    got = travel(MemoryError("out of memory"))
    assert type(got) is RuntimeError and str(got) == "rank 1 failed: MemoryError: out of memory"


def test_a_multi_valued_field_trains_on_two_ranks_as_in_one_process(tmp_path):
    """Jagged multi-valued ids go through the shard encoding (vocabulary merged over both
    ranks' files), the cache and the ranks' shares of each batch like the other fields."""
    data = tmp_path / "csv"
    data.mkdir()
    rng = np.random.default_rng(0)
    genres = np.array(["Action", "Comedy", "Drama", "Horror", "Romance", "Western", "Noir"])
    for k, rows in enumerate((700, 900, 600)):
        lines = ["click,price,user,genres"]
        for _ in range(rows):
            picked = rng.choice(genres, rng.integers(0, 6))  # 0..5 elements, repeats allowed
            click = int(rng.random() < (0.7 if "Action" in picked else 0.25))
            lines.append(f"{click},{rng.random():.3f},u{rng.integers(0, 30)},{'|'.join(picked)}")
        (data / f"part-{k}.csv").write_text("\n".join(lines) + "\n")
    argv = ["--data", str(data), "--format", "csv", "--label", "click",
            "--multi-valued", "genres:pipe:pooling=mean:max_length=4:keep=last",
            "--epochs", "2", "--batch-size", "64", "--embedding-dim", "4",
            "--model-option", "cross.rank=2", "--model-option", "deep_layers=[8]",
            "--model-option", "sparse_gradients=true", "--threads", "1", "--no-progress",
            "--optimizer", "sgd", "--lr", "0.1", "--min-count", "2",
            # the defaults before 2026-12-01: no dropout, no embedding L2, 3 cross layers
            "--model-option", "dropout=0", "--model-option", "embedding_l2=0",
            "--model-option", "cross.num_layers=3"]
    ranks = train_on_two_ranks(tmp_path, "ddp", ["--out", str(tmp_path / "ddp"), *argv])
    for rank in ranks:
        assert rank["code"] == 0, rank["output"]
    # each rank parsed its own files, every file once
    assert all(r["parsed"] for r in ranks)
    assert sorted(ranks[0]["parsed"] + ranks[1]["parsed"]) == [f"part-{k}.csv" for k in range(3)]
    assert train_in_this_process(["--out", str(tmp_path / "one"), *argv]) == 0
    ddp, one = tmp_path / "ddp", tmp_path / "one"
    same_bytes(ddp / "encoder", one / "encoder")
    same_bytes(ddp / "cache", one / "cache")
    manifest = json.loads((ddp / "cache" / "manifest.json").read_text())
    assert [m["name"] for m in manifest["multi_valued"]] == ["genres"]
    rtol, atol = TOLERANCES[torch.float32]
    mine, ref = load_file(ddp / "model.safetensors"), load_file(one / "model.safetensors")
    assert mine.keys() == ref.keys() and any("bags" in k for k in ref)
    for name, value in ref.items():
        np.testing.assert_allclose(mine[name], value, rtol=rtol, atol=atol, err_msg=name)
