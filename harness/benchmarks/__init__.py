"""Benchmark tables: ground truth looked up, never trained here."""

from harness.benchmarks.nb201 import NB201
from harness.benchmarks.nb301 import NB301
from harness.benchmarks.nbmacro import NBMacro
from harness.benchmarks.table import TableBenchmark

__all__ = ["NB201", "NB301", "NBMacro", "TableBenchmark"]
