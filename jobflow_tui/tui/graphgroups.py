"""The DAG as the graph draws it: each closed subflow one node standing for all its tasks,
with the edges of its tasks to the world outside it. Pure Python, no terminal."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from ..engine.events import ABORTED, BLOCKED, FAILED, PENDING, RETRYING, RUNNING, SUCCEEDED


def aggregate_state(states: Collection[str]) -> str:
    """One state for many tasks: the one that needs the reader most."""
    for state in (FAILED, RUNNING, RETRYING, BLOCKED, ABORTED):
        if state in states:
            return RUNNING if state == RETRYING else state
    return SUCCEEDED if states and all(s == SUCCEEDED for s in states) else PENDING


class Collapsed:
    """The nodes drawn for a run: tasks, and subflows not opened (their tasks hidden).

    `subflows`: each subflow's tasks, every level below it; `opened`: the subflows whose
    tasks (and closed subflows inside) are drawn. A subflow inside a closed one stays hidden.
    """

    def __init__(self, order: Sequence[str], deps: Mapping[str, Sequence[str]],
                 subflows: Mapping[str, Sequence[str]], opened: Collection[str] = ()) -> None:
        known = set(order)
        flows = {f: [n for n in members if n in known] for f, members in subflows.items()}
        # Outer subflows first: one holds every task of those inside it, and its name is shorter.
        outer_first = sorted((f for f in flows if flows[f]), key=lambda f: (-len(flows[f]), len(f), f))
        self.node_of: dict[str, str] = {}  # task -> the node drawn for it
        for f in reversed(outer_first):  # the outermost closed subflow wins: written last
            if f not in opened:
                self.node_of.update(dict.fromkeys(flows[f], f))
        self.members: dict[str, list[str]] = {}  # node -> its tasks
        for name in order:
            self.members.setdefault(self.node_of.get(name, name), []).append(name)
        self.flows = {f for f in self.members if f in flows and f not in known}
        node_deps: dict[str, list[str]] = {}
        for node, names in self.members.items():
            outside = (self.node_of.get(d, d) for n in names for d in deps.get(n, ()) if d in known)
            node_deps[node] = [d for d in dict.fromkeys(outside) if d != node]
        self.order = _topological(list(self.members), node_deps)
        # Subflows whose tasks do not stand together may depend on each other both ways:
        # such an edge back is left out rather than the graph refused.
        index = {node: i for i, node in enumerate(self.order)}
        self.deps = {node: [d for d in ds if index[d] < index[node]] for node, ds in node_deps.items()}

    def is_flow(self, node: str) -> bool:
        return node in self.flows

    def state(self, node: str, state_of: Callable[[str], str]) -> str:
        """A task's state, or the aggregate of a closed subflow's tasks."""
        if node not in self.flows:
            return state_of(node)
        return aggregate_state({state_of(n) for n in self.members[node]})

    def seconds(self, node: str, spans: Mapping[str, tuple[float, float] | None]) -> float:
        """Time taken: from the node's first task start to its last task end (spans: task -> (start, end))."""
        times = [s for n in self.members[node] if (s := spans.get(n))]
        return max(e for _, e in times) - min(b for b, _ in times) if times else 0.0


def _topological(nodes: list[str], deps: Mapping[str, list[str]]) -> list[str]:
    """`nodes`, each after its dependencies, otherwise in the order given (which is already
    such an order when each subflow's tasks stand together)."""
    seen: set[str] = set()
    for node in nodes:
        if not seen.issuperset(deps.get(node, ())):
            break
        seen.add(node)
    else:
        return nodes
    done: set[str] = set()
    out: list[str] = []
    for start in nodes:
        stack = [(start, iter(deps.get(start, ())))]
        on_stack = {start}
        while stack:
            node, it = stack[-1]
            if node in done:
                stack.pop()
                continue
            nxt = next((d for d in it if d not in done and d not in on_stack), None)
            if nxt is None:
                stack.pop()
                on_stack.discard(node)
                done.add(node)
                out.append(node)
            else:
                stack.append((nxt, iter(deps.get(nxt, ()))))
                on_stack.add(nxt)
    return out
