"""CPU training speed of DLRM-DCN beside TorchRec's and DeepCTR-Torch's published numbers.

The shape and the peers' numbers are documented in ``crossrank.bench``.
Run: .venv/bin/python benchmarks/bench_train_cpu.py [--steps 30] [--threads 2]
"""

import argparse

from crossrank.bench import run_training_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(run_training_benchmark(steps=args.steps, batch=args.batch, threads=args.threads))
