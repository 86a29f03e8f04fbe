"""The job dependency graph: cycle detection, start levels and the reverse order for stopping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

from trader.errors import ConfigError

Graph = Mapping[str, Iterable[str]]
"""Each job name mapped to the names it depends on."""


def check_acyclic(graph: Graph, source: str = "pycron") -> None:
    """Raise ConfigError naming the cycle (``a -> b -> a``, read "depends on") if there is one."""
    try:
        TopologicalSorter({name: list(deps) for name, deps in graph.items()}).prepare()
    except CycleError as exc:
        # graphlib lists each node before the one that depends on it; reverse to read "depends on".
        cycle = list(reversed(exc.args[1]))
        raise ConfigError(f"{source}: dependency cycle: {' -> '.join(cycle)}") from None


def start_levels(graph: Graph) -> list[list[str]]:
    """Return the jobs grouped in levels: each level depends only on earlier ones.

    Within a level names keep the graph's order, so the result is deterministic.
    """
    sorter = TopologicalSorter({name: list(deps) for name, deps in graph.items()})
    sorter.prepare()
    order = {name: i for i, name in enumerate(graph)}
    levels: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: order.get(n, len(order)))
        levels.append(ready)
        sorter.done(*ready)
    return levels


def stop_levels(graph: Graph) -> list[list[str]]:
    """Return the levels in which to stop the jobs: every job after all the jobs that depend on it."""
    return list(reversed(start_levels(graph)))


def dependents(graph: Graph) -> dict[str, list[str]]:
    """Return each job mapped to the jobs that depend on it directly."""
    out: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            out.setdefault(dep, []).append(name)
    return out


def stop_sorter(graph: Graph) -> TopologicalSorter[str]:
    """Return a prepared sorter that releases a job once every job depending on it is done.

    Drive it with ``get_ready()``/``done()`` to stop jobs as early as their
    dependents allow, rather than level by level.
    """
    sorter: TopologicalSorter[str] = TopologicalSorter(dependents(graph))
    sorter.prepare()
    return sorter
