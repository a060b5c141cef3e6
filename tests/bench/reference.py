"""Plain reference implementations of the NAS-Bench-201 baselines for timing the harness against: no classes,
no records, one array look-up per evaluation. ``lookup(code) -> (valid_12ep, cost_12ep)``; ``code`` is the
base-5 index of the 6 edge ops. Each function returns the code of the best architecture found."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Lookup = Callable[[int], tuple[float, float]]
_POW = 5 ** np.arange(5, -1, -1)


def _code(ops: np.ndarray) -> int:
    return int(ops @ _POW)


def random_search(lookup: Lookup, rng: np.random.Generator, budget: float) -> int:
    clock, best, best_code = 0.0, -np.inf, -1
    while clock < budget:
        code = _code(rng.integers(0, 5, 6))
        acc, cost = lookup(code)
        clock += cost
        if acc > best:
            best, best_code = acc, code
    return best_code


def regularized_evolution(lookup: Lookup, rng: np.random.Generator, budget: float, pop: int = 10, k: int = 3) -> int:
    clock, best, best_code = 0.0, -np.inf, -1
    population: list[tuple[np.ndarray, float]] = []
    while clock < budget:
        if len(population) < pop:
            ops = rng.integers(0, 5, 6)
        else:
            parent = max((population[i] for i in rng.integers(len(population), size=k)), key=lambda m: m[1])[0]
            ops = parent.copy()
            i = rng.integers(6)
            new = rng.integers(4)
            ops[i] = new + (new >= ops[i])
        code = _code(ops)
        acc, cost = lookup(code)
        clock += cost
        population.append((ops, acc))
        if len(population) > pop:
            population.pop(0)
        if acc > best:
            best, best_code = acc, code
    return best_code


def reinforce(lookup: Lookup, rng: np.random.Generator, budget: float, lr: float = 0.01, mom: float = 0.9) -> int:
    theta = 1e-3 * rng.standard_normal((6, 5))
    m, v, t, num, den = np.zeros((6, 5)), np.zeros((6, 5)), 0, 0.0, 0.0
    clock, best, best_code = 0.0, -np.inf, -1
    while clock < budget:
        p = np.exp(theta - theta.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ops = (np.cumsum(p, 1) <= rng.random(6)[:, None]).sum(1)
        code = _code(ops)
        acc, cost = lookup(code)
        clock += cost
        if acc > best:
            best, best_code = acc, code
        num, den = mom * num + (1 - mom) * acc, mom * den + (1 - mom)
        g = -(np.eye(5)[ops] - p) * (acc - num / den)
        t += 1
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return best_code


ALGORITHMS = {"rs": random_search, "rea": regularized_evolution, "rl": reinforce}
