"""CPU training speed of DLRM-DCN: crossrank's training step, samples/s (`crossrank bench`).

The shape: DLRM with a 3-layer low-rank (r=64) cross interaction, D=16, 26 tables of 100,000
rows, bottom MLP 512-256-16, top 512-256-1, batch 2048, 2 threads, Criteo-shaped random data;
what is timed is the Trainer's own step (``crossrank.train.step.TrainStep``), see
``crossrank.train.throughput``.

Other libraries on this shape, for orientation only: published figures for 2 CPU cores,
quoted in the issue that asked for this benchmark and recorded here on 2026-11-23 (commit
15553c0). They were measured on another machine at another time, so they are not comparable
with a figure this script measures; to compare, measure the peers beside crossrank on the same
machine with the scripts in ``shared/peers/``.

    TorchRec DLRM_DCN, FBGEMM's fused embedding optimizer   15,100 samples/s
    TorchRec DLRM_DCN, unfused EmbeddingBagCollection        4,800 samples/s
    DeepCTR-Torch DCN                                        4,700 samples/s

The same issue estimated the development machine's 2 cores at ~90 GFLOP/s on a 2048x512x512
product, i.e. ~22,000 samples/s for this model's 3.97 MFLOP/sample.

Run: .venv/bin/python benchmarks/bench_train_cpu.py [--steps 30] [--batch 2048] [--threads 2]
"""

import argparse

from crossrank.train.throughput import run_training_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(run_training_benchmark(steps=args.steps, batch=args.batch, threads=args.threads))
