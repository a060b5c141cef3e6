"""The NAS-Bench-201 cell space: 6 edges x 5 operations = 15,625 architectures (6,466 up to isomorphism)."""

from __future__ import annotations

from harness.errors import ArchParseError
from harness.interfaces import SearchSpace
from harness.types import Arch

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to_node, from_node) of each edge, in the order of the architecture string and of ``Arch.ops``.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_OP_INDEX = {name: i for i, name in enumerate(OPS)}


class NB201Space(SearchSpace):
    """NAS-Bench-201 cells, written ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

    ``Arch.ops[e]`` is the index in :data:`OPS` of the operation on edge ``EDGES[e]``.
    """

    name = "nb201"
    choices = (5,) * 6

    def parse(self, text: str) -> Arch:
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise ArchParseError(f"NB201 architecture {text!r} must have 3 nodes separated by '+', found {len(nodes)}")
        ops: list[int] = []
        for to_node, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise ArchParseError(f"NB201 architecture {text!r}: node {node!r} must be written |op~j|...|")
            tokens = node[1:-1].split("|")
            if len(tokens) != to_node:
                raise ArchParseError(f"NB201 architecture {text!r}: node {to_node} needs {to_node} edges, got {node!r}")
            for from_node, token in enumerate(tokens):
                op, _, src = token.partition("~")
                if op not in _OP_INDEX:
                    raise ArchParseError(
                        f"NB201 architecture {text!r}: unknown operation {op!r} in token {token!r}; "
                        f"valid operations: {', '.join(OPS)}"
                    )
                if src != str(from_node):
                    raise ArchParseError(
                        f"NB201 architecture {text!r}: token {token!r} must read from node {from_node} "
                        f"(write {op}~{from_node})"
                    )
                ops.append(_OP_INDEX[op])
        return Arch(tuple(ops))

    def format(self, arch: Arch) -> str:
        o = [OPS[i] for i in arch.ops]
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def iso_key(self, arch: Arch) -> str:
        """NATS-Bench's canonical cell string (``UniqueString``): equal exactly for isomorphic cells.

        A ``none`` edge or an input that is identically zero contributes ``#``; ``skip_connect`` passes its input's
        expression through; any other op wraps it as ``(input)@op``; a node is the sorted ``+``-join of its inputs.
        """
        exprs = ["0"]
        edge = 0
        for to_node in (1, 2, 3):
            terms = []
            for from_node in range(to_node):
                op = OPS[arch.ops[edge]]
                edge += 1
                src = exprs[from_node]
                if op == "none" or src == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(src)
                else:
                    terms.append(f"({src})@{op}")
            exprs.append("+".join(sorted(terms)))
        return exprs[3]
