"""The job graph's decisions: problems across the catalog (unknown, self, too many, cycles) and when a
downstream of `after` starts."""
from __future__ import annotations

import sys

from jobsd_lib.kernel.graph import MAX_UPSTREAMS, Edge, GraphProblem, find_cycle, graph_problems, upstream_ready


def after(job: str, *ups: str) -> list[Edge]:
    return [Edge(job, up, f"after[{i}]") for i, up in enumerate(ups)]


def test_a_sound_graph_has_no_problems():
    edges = after("load", "extract", "transform") + after("transform", "extract")
    assert graph_problems(edges, {"extract", "transform", "load"}) == []


def test_unknown_upstreams_and_the_job_itself_name_the_field():
    problems = graph_problems(after("a", "ghost", "a") + [Edge("a", "nope", "requires[0].job")], {"a"})
    assert problems == [GraphProblem("a", "after[0]", "no job 'ghost' in the jobs folder"),
                        GraphProblem("a", "after[1]", "'a' is this job itself"),
                        GraphProblem("a", "requires[0].job", "no job 'nope' in the jobs folder")]


def test_each_job_of_a_cycle_names_the_cycle_from_itself_and_others_stay_valid():
    edges = after("a", "b") + after("b", "c") + [Edge("c", "a", "requires[0].job")] + after("d", "a")
    problems = {p.job: p for p in graph_problems(edges, "abcd")}
    assert set(problems) == {"a", "b", "c"}  # d only points into the cycle
    assert problems["a"] == GraphProblem("a", "after[0]", "cycle: a -> b -> c -> a")
    assert problems["c"] == GraphProblem("c", "requires[0].job", "cycle: c -> a -> b -> c")


def test_two_cycles_are_both_found():
    edges = after("a", "b") + after("b", "a") + after("x", "y") + after("y", "x")
    assert {p.message for p in graph_problems(edges, "abxy")} == {
        "cycle: a -> b -> a", "cycle: b -> a -> b", "cycle: x -> y -> x", "cycle: y -> x -> y"}


def test_a_long_chain_and_a_long_cycle_need_no_recursion():
    chain = [f"j{i:04d}" for i in range(5000)]
    edges = [e for i in range(1, len(chain)) for e in after(chain[i], chain[i - 1])]
    assert 5000 > sys.getrecursionlimit()
    assert graph_problems(edges, chain) == []
    closing = after(chain[0], chain[-1])
    cycle = find_cycle({e.job: [e.upstream] for e in edges + closing})
    assert cycle is not None and len(cycle) == 5000


def test_too_many_upstreams_is_one_problem():
    ups = [f"u{i}" for i in range(MAX_UPSTREAMS + 1)]
    problems = graph_problems(after("fan", *ups), ["fan", *ups])
    assert problems == [GraphProblem("fan", "after", f"names {MAX_UPSTREAMS + 1} upstream jobs; at most {MAX_UPSTREAMS}")]


def test_a_downstream_starts_once_every_upstream_succeeded_since_its_last_dependency_run():
    ups = ["extract", "transform"]
    assert upstream_ready(ups, {"extract": (10, "extract/1")}, 0) is None  # transform never succeeded
    both = {"extract": (10, "extract/1"), "transform": (12, "transform/4")}
    assert upstream_ready(ups, both, 0) == "transform/4"  # the one that completed the set
    assert upstream_ready(ups, both, 13) is None  # already triggered after both: not again
    again = {**both, "extract": (20, "extract/2")}
    assert upstream_ready(ups, again, 13) is None  # transform has not succeeded since
    assert upstream_ready(ups, {**again, "transform": (25, "transform/5")}, 13) == "transform/5"
    assert upstream_ready([], both, 0) is None


def test_connected_follows_edges_both_ways_and_stops_at_unrelated_jobs():
    from jobsd_lib.kernel.graph import connected

    after = {"load": ["extract"], "report": ["load"], "audit": ["report", "other"], "lonely": [], "x": ["y"]}
    assert connected(after, "load") == {"extract", "load", "report", "audit", "other"}
    assert connected(after, "lonely") == {"lonely"} and connected(after, "y") == {"x", "y"}
    chain = {f"j{i}": [f"j{i - 1}"] for i in range(1, 5000)}  # no recursion limit
    assert len(connected(chain, "j2500")) == 5000


def test_downstreams_index_every_upstream_once():
    from jobsd_lib.kernel.graph import downstreams

    assert downstreams({"report": ["load", "extract"], "load": ["extract"], "alone": []}) == \
        {"extract": ("load", "report"), "load": ("report",)}
