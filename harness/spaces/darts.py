"""The DARTS cell space of NAS-Bench-301: about 1.08e18 architectures, far too many to enumerate.

A genotype (GitHub quark0/darts @f276dd3, ``cnn/genotypes.py``) has a normal and a reduction cell. A cell has two
inputs (0: the cell before the previous one, 1: the previous one) and four nodes 2-5; node ``k`` sums two
operations on two *different* earlier states ``i < j < k``; the cell outputs the four nodes concatenated. The
genotype lists 8 ``(operation, input)`` edges per cell, pairs ``2m, 2m+1`` feeding node ``m + 2``. NAS-Bench-301
(Siems et al., 2020) uses DARTS' operations without ``none``, always concatenates nodes 2-5, and lets a node read
any two different states (NASLib ``zerocost`` branch @6639fd15, ``naslib/search_spaces/nasbench301/graph.py``,
``sample_random_architecture``; the order of :data:`OPS` is that file's ``compact`` op index and DARTS'
``PRIMITIVES`` without ``none``).

As categorical decisions (``Arch.ops``, 22 of them), cell ``c`` (0 = normal, 1 = reduce) owns 11:

* ``ops[11c + e]`` for edge ``e`` = 0..7: the operation (index into :data:`OPS`) of edge ``e``; edges ``2m`` and
  ``2m + 1`` feed node ``m + 2``, the first from the node's lower input, the second from its higher one;
* ``ops[11c + 8 + (k - 3)]`` for node ``k`` = 3, 4, 5: which pair of inputs node ``k`` reads, an index into
  :data:`PAIRS` ``[k]`` (3, 6 and 10 choices; node 2 always reads inputs 0 and 1, so it has no decision).

Every Arch is a valid genotype and every genotype has exactly one Arch: the canonical form lists the two edges
of each node by increasing input, which is all the "isomorphism" a node's sum has.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Sequence

from harness.errors import ArchParseError
from harness.interfaces import SearchSpace
from harness.types import Arch

#: The operations (NAS-Bench-301 has no ``none``), in NASLib's compact order.
OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELLS: tuple[str, ...] = ("normal", "reduce")
NODES: tuple[int, ...] = (2, 3, 4, 5)
#: the nodes the cell concatenates (every one: NAS-Bench-301 fixes ``*_concat`` to ``[2, 3, 4, 5]``)
CONCAT: tuple[int, ...] = NODES
#: the input pairs ``(i, j)``, ``i < j < k``, node ``k`` may read, in lexicographic order
PAIRS: dict[int, tuple[tuple[int, int], ...]] = {k: tuple(itertools.combinations(range(k), 2)) for k in NODES}
EDGES_PER_CELL = 2 * len(NODES)
#: decisions per cell: 8 operations, then the input pair of nodes 3, 4, 5
CELL_CHOICES: tuple[int, ...] = (len(OPS),) * EDGES_PER_CELL + tuple(len(PAIRS[k]) for k in NODES[1:])
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_OP_INDEX = {name: i for i, name in enumerate(OPS)}
_PAIR_INDEX = {k: {pair: i for i, pair in enumerate(PAIRS[k])} for k in NODES}
_FORM = "Genotype(normal=[(op, input), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])"

#: one cell's edges: 8 ``(operation name, input)`` pairs, two per node 2-5
Edges = list[tuple[str, int]]


def op_decision(cell: int, edge: int) -> int:
    """Position in ``Arch.ops`` of the operation of ``edge`` (0..7) of ``cell`` (0 normal, 1 reduce)."""
    return len(CELL_CHOICES) * cell + edge


def pair_decision(cell: int, node: int) -> int:
    """Position in ``Arch.ops`` of the input-pair decision of ``node`` (3, 4 or 5) of ``cell``."""
    return len(CELL_CHOICES) * cell + EDGES_PER_CELL + node - 3


def cell_edges(arch: Arch, cell: int) -> Edges:
    """The canonical ``(operation, input)`` edges of one cell (0 normal, 1 reduce) of ``arch``."""
    edges: Edges = []
    for m, node in enumerate(NODES):
        lo, hi = PAIRS[node][arch.ops[pair_decision(cell, node)]] if node > 2 else (0, 1)
        edges += [(OPS[arch.ops[op_decision(cell, 2 * m)]], lo), (OPS[arch.ops[op_decision(cell, 2 * m + 1)]], hi)]
    return edges


def from_cells(normal: Sequence[tuple[str, int]], reduce: Sequence[tuple[str, int]]) -> Arch:
    """The Arch of a genotype given as two cells of 8 ``(operation, input)`` edges each (checked, any edge order
    within a node); raises :class:`~harness.errors.ArchParseError` naming the bad token."""
    ops: list[int] = []
    for name, edges in zip(CELLS, (normal, reduce), strict=True):
        ops += _cell_decisions(name, edges)
    return Arch(tuple(ops))


def _cell_decisions(cell: str, edges: Sequence[tuple[str, int]]) -> list[int]:
    if not isinstance(edges, list | tuple):
        raise ArchParseError(f"DARTS genotype: {cell} = {edges!r} is not a list of (operation, input) pairs")
    if len(edges) != EDGES_PER_CELL:
        raise ArchParseError(
            f"DARTS genotype: {cell} has {len(edges)} edges; a cell needs {EDGES_PER_CELL} (op, input) pairs, "
            "two per node 2-5"
        )
    op_ids: list[int] = []
    pair_ids: list[int] = []
    for m, node in enumerate(NODES):
        pair = []
        for e in (2 * m, 2 * m + 1):
            edge = edges[e]
            if not (isinstance(edge, tuple | list) and len(edge) == 2):
                raise ArchParseError(f"DARTS genotype: {cell} edge {e} is {edge!r}, not an (operation, input) pair")
            op, src = edge
            if not isinstance(op, str) or op not in _OP_INDEX:
                why = " (NAS-Bench-301 has no 'none' operation)" if op == "none" else ""
                raise ArchParseError(
                    f"DARTS genotype: {cell} edge {e} {tuple(edge)!r}: unknown operation {op!r}{why}; "
                    f"valid: {', '.join(OPS)}"
                )
            if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < node:
                raise ArchParseError(
                    f"DARTS genotype: {cell} edge {e} {tuple(edge)!r}: input {src!r} is out of range; node {node} "
                    f"reads two of the inputs 0-{node - 1}"
                )
            pair.append((src, _OP_INDEX[op]))
        (a, op_a), (b, op_b) = sorted(pair)
        if a == b:
            raise ArchParseError(
                f"DARTS genotype: {cell} node {node} reads input {a} twice ({tuple(edges[2 * m])!r}, "
                f"{tuple(edges[2 * m + 1])!r}); its two edges need different inputs"
            )
        op_ids += [op_a, op_b]
        if node > 2:
            pair_ids.append(_PAIR_INDEX[node][a, b])
    return op_ids + pair_ids


def _literal(node: ast.expr, what: str) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        text = ast.unparse(node)
        text = text if len(text) <= 40 else text[:37] + "..."
        raise ArchParseError(f"DARTS genotype: {what} = {text!r} is not a literal list") from None


def _concat(node: ast.expr, what: str) -> list[int]:
    """A ``*_concat`` value: a literal list of ints, or ``range(a, b[, step])`` as ``str(genotype)`` may print."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        args = [_literal(a, what) for a in node.args]
        ints = [a for a in args if type(a) is int]
        if node.keywords or not 1 <= len(args) <= 3 or len(ints) != len(args):
            raise ArchParseError(f"DARTS genotype: {what} = {ast.unparse(node)!r} is not range(2, 6)")
        return list(range(*ints))
    value = _literal(node, what)
    if not isinstance(value, list | tuple) or not all(type(v) is int for v in value):
        raise ArchParseError(f"DARTS genotype: {what} = {value!r} must be a list of node numbers")
    return list(value)


def parse_genotype(text: str) -> Arch:
    """The Arch of a DARTS genotype string ``Genotype(normal=[...], normal_concat=..., reduce=[...],
    reduce_concat=...)`` (keywords or positional, as ``repr`` of DARTS' namedtuple writes it; a concat may be
    ``range(2, 6)``). Raises :class:`~harness.errors.ArchParseError` naming the bad token."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ArchParseError(f"DARTS genotype {text[:60]!r}...: not a {_FORM} expression ({exc.msg})") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
        raise ArchParseError(f"DARTS genotype {text[:60]!r}: must be written {_FORM}")
    if len(call.args) > len(_FIELDS):
        raise ArchParseError(f"DARTS genotype: Genotype takes 4 fields ({', '.join(_FIELDS)}), got {len(call.args)}")
    fields: dict[str, ast.expr] = dict(zip(_FIELDS, call.args, strict=False))
    for kw in call.keywords:
        if kw.arg not in _FIELDS:
            raise ArchParseError(
                f"DARTS genotype: unknown field {kw.arg!r} in Genotype(...); fields: {', '.join(_FIELDS)}"
            )
        if kw.arg in fields:
            raise ArchParseError(f"DARTS genotype: field {kw.arg!r} is given twice")
        fields[kw.arg] = kw.value
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise ArchParseError(f"DARTS genotype: Genotype(...) lacks {', '.join(missing)}; write {_FORM}")
    cells = []
    for cell in CELLS:
        concat = _concat(fields[f"{cell}_concat"], f"{cell}_concat")
        if concat != list(CONCAT):
            raise ArchParseError(
                f"DARTS genotype: {cell}_concat = {concat}; NAS-Bench-301 cells concatenate all of nodes 2-5 "
                "([2, 3, 4, 5], or range(2, 6))"
            )
        cells.append(_literal(fields[cell], cell))
    return from_cells(*cells)  # type: ignore[arg-type]  # literals of any shape: from_cells checks each one


def format_genotype(arch: Arch) -> str:
    """The canonical genotype string of ``arch``: each node's edges by increasing input, concat ``[2, 3, 4, 5]``."""
    normal, reduce = (cell_edges(arch, c) for c in range(len(CELLS)))
    concat = list(CONCAT)
    return f"Genotype(normal={normal!r}, normal_concat={concat!r}, reduce={reduce!r}, reduce_concat={concat!r})"


class DartsSpace(SearchSpace):
    """The NAS-Bench-301 DARTS space, written as DARTS genotypes (module docstring for the decisions).

    Its ~1.08e18 architectures are never enumerated (:meth:`enumerate` raises a
    :class:`~harness.errors.ConfigError`); searchers and rank samples draw from it. :meth:`iso_key` is the
    canonical genotype string, which already orders the two edges of a node; other isomorphisms (e.g. swapping
    two nodes that read the same states) are not merged.
    """

    name = "darts"
    choices = CELL_CHOICES * len(CELLS)

    def parse(self, text: str) -> Arch:
        return parse_genotype(text)

    def format(self, arch: Arch) -> str:
        return format_genotype(arch)
