"""Searchers: one algorithm per file, each a :class:`harness.interfaces.Searcher` (ask/tell).

A searcher is found by its config (``conf/searcher/<name>.yaml`` names its class), never by a list here: import
one from its module (``from searchers.rminas import RMINAS``) or build it by name (``harness.searcher("rminas")``).
"""
