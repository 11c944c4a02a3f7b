"""The job graph (DESIGN 10): which jobs a job names in `after` (its triggers) and `[[requires]]` (its
gates), what is wrong with those names across the whole catalog, and when a downstream starts.

Every function here is iterative: a 500-job chain or a job with hundreds of upstreams never meets
Python's recursion limit. Nothing here reads a clock or a store; the daemon passes what it read.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Edge", "GraphProblem", "graph_problems", "find_cycle", "upstream_ready", "downstreams", "connected",
           "MAX_UPSTREAMS"]

MAX_UPSTREAMS = 256  # names in `after` plus `[[requires]]` of one job


@dataclass(frozen=True)
class Edge:
    """`job` names `upstream` in its spec at `field` ("after[1]", "requires[0].job")."""
    job: str
    upstream: str
    field: str


@dataclass(frozen=True)
class GraphProblem:
    job: str
    field: str
    message: str


def graph_problems(edges: Iterable[Edge], known: Iterable[str]) -> list[GraphProblem]:
    """What makes specs invalid across files: an upstream that is no job, a job naming itself, too
    many upstreams, and cycles (over `after` and `requires` alike: a cycle of gates waits forever, a
    cycle of triggers runs forever). Each job of a cycle gets one problem naming the whole cycle,
    starting from itself (`a -> b -> a`). Jobs that only point into a cycle are not in it: they stay
    valid (and wait or are never triggered while their upstreams are invalid)."""
    known = set(known)
    edges = list(edges)
    problems: list[GraphProblem] = []
    counts: dict[str, int] = {}
    for edge in edges:
        counts[edge.job] = counts.get(edge.job, 0) + 1
    for job, count in counts.items():
        if count > MAX_UPSTREAMS:
            problems.append(GraphProblem(job, "after", f"names {count} upstream jobs; at most {MAX_UPSTREAMS}"))
    for edge in edges:
        if edge.upstream == edge.job:
            problems.append(GraphProblem(edge.job, edge.field, f"{edge.upstream!r} is this job itself"))
        elif edge.upstream not in known:
            problems.append(GraphProblem(edge.job, edge.field, f"no job {edge.upstream!r} in the jobs folder"))
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        if edge.upstream in known and edge.upstream != edge.job:
            graph.setdefault(edge.job, []).append(edge)
    for cycle in _cycles(graph):
        for i, job in enumerate(cycle):
            path = cycle[i:] + cycle[:i] + [job]
            field = next(e.field for e in graph[job] if e.upstream == path[1])
            problems.append(GraphProblem(job, field, "cycle: " + " -> ".join(path)))
    return problems


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle of `graph` (job -> the jobs it names) as its jobs in order, or None."""
    edges = {job: [Edge(job, up, "") for up in ups] for job, ups in graph.items()}
    return next(iter(_cycles(edges)), None)


def _cycles(graph: Mapping[str, Sequence[Edge]]) -> list[list[str]]:
    """Every strongly connected set of more than one job, each as one cycle through all of its jobs
    where one exists along the DFS (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            ups = [e.upstream for e in graph.get(node, ())]
            if i < len(ups):
                work.append((node, i + 1))
                up = ups[i]
                if up not in index:
                    work.append((up, 0))
                elif up in on_stack:
                    low[node] = min(low[node], index[up])
                continue
            if work:  # returning to the parent
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    members.append(top)
                    if top == node:
                        break
                if len(members) > 1:
                    found.append(_cycle_through(graph, set(members)))
    return found


def _cycle_through(graph: Mapping[str, Sequence[Edge]], members: set[str]) -> list[str]:
    """A simple cycle inside one strongly connected set, from its smallest id (stable messages)."""
    start = min(members)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to `start`
        nxt = []
        for node in frontier:
            for edge in graph.get(node, ()):
                up = edge.upstream
                if up == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return list(reversed(path))
                if up in members and up not in parents:
                    parents[up] = node
                    nxt.append(up)
        frontier = nxt
    return sorted(members)  # unreachable in a strongly connected set


def downstreams(after: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """upstream job -> the jobs whose `after` names it, sorted (one pass over every edge)."""
    found: dict[str, list[str]] = {}
    for down, ups in after.items():
        for up in ups:
            found.setdefault(up, []).append(down)
    return {up: tuple(sorted(downs)) for up, downs in found.items()}


def connected(after: Mapping[str, Sequence[str]], job: str) -> set[str]:
    """`job` and every job linked to it by `after` edges in either direction, transitively (its
    upstreams' upstreams, its downstreams' downstreams, and theirs): what `jobs graph JOB` shows."""
    links: dict[str, set[str]] = {}
    for down, ups in after.items():
        for up in ups:
            links.setdefault(down, set()).add(up)
            links.setdefault(up, set()).add(down)
    seen, todo = {job}, [job]
    while todo:
        for other in links.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def upstream_ready(after: Sequence[str], last_success: Mapping[str, tuple[int, str]],
                   last_triggered: int) -> str | None:
    """Does a downstream start now? `after` lists its upstreams; `last_success[u]` is the store's
    position (event seq) and ref of u's newest succeeded run; `last_triggered` the position of the
    downstream's newest dependency-triggered run (0: none). It starts when every upstream succeeded
    after that point; the answer is the run that completed the set (the latest of them), else None.
    Positions, not times: a clock that jumps cannot start a run twice or never."""
    if not after:
        return None
    latest: tuple[int, str] | None = None
    for upstream in after:
        success = last_success.get(upstream)
        if success is None or success[0] <= last_triggered:
            return None
        if latest is None or success[0] > latest[0]:
            latest = success
    return latest[1] if latest else None
