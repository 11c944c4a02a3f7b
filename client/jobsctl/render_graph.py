"""`jobs graph` as JSON, a table and Graphviz DOT (the shapes of docs/cli.md)."""
from jobsctl.render import _enum, table
from jobsd_lib.kernel.states import JobState


def graph_json(graph) -> dict:  # noqa: ANN001 - a pb.Graph
    return {"jobs": [{"id": j.id, "state": _enum(JobState, j.state), "after": list(j.after), "requires": list(j.requires)}
                     for j in graph.jobs]}


def graph_text(data: dict) -> str:
    if not data["jobs"]:
        return "no jobs"
    rows = [[j["id"], j["state"] or "-", ", ".join(j["after"]) or "-"] for j in data["jobs"]]
    if not any(j["requires"] for j in data["jobs"]):
        return table(["JOB", "STATE", "AFTER"], rows)
    return table(["JOB", "STATE", "AFTER", "REQUIRES"],
                 [[*row, ", ".join(j["requires"]) or "-"] for row, j in zip(rows, data["jobs"])])


def graph_dot(data: dict) -> str:
    """Graphviz DOT: an edge points from the upstream to the job it starts, a dotted one labelled
    `requires` from a required job to the job it gates; invalid jobs are dashed."""
    lines = ["digraph jobs {", "  rankdir=LR;"]
    for j in data["jobs"]:
        style = ' [style=dashed, label="' + j["id"] + ' (invalid)"]' if j["state"] == JobState.INVALID.value else ""
        lines.append(f'  "{j["id"]}"{style};')
    for j in data["jobs"]:
        lines.extend(f'  "{up}" -> "{j["id"]}";' for up in j["after"])
        lines.extend(f'  "{up}" -> "{j["id"]}" [style=dotted, label="requires"];' for up in j["requires"])
    return "\n".join([*lines, "}"])
