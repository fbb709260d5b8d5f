"""``python -m crossrank`` (also what ``torchrun -m crossrank`` runs)."""

from crossrank.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
