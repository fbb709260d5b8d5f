"""Root pytest configuration: skip the Triton kernel modules' doctests when triton is absent."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("triton") is None:
    collect_ignore_glob.append("src/crossrank/ops/triton/*.py")
