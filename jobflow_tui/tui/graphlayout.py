"""The DAG laid out on a character grid, each task once; pure Python, no terminal.

Tasks stand in columns by layer (one more than their deepest dependency). An edge that
skips layers passes a placeholder slot in each layer between, shared by all the far
dependants of its task (one track, a bus). Barycenter sweeps order each column, from the
job's order, to cut crossings. Between two columns each source has a vertical lane over
its targets' rows, packed by the left-edge algorithm with a task's own lane left of any
other lane entering a task on its row, so lines sharing a row stay apart where they can.
Rows are drawn on demand (`row_text`): a 1,000-task job costs its layout once, then only
the rows shown.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# A cell's line directions: which sides of the cell a line leaves from.
UP, RIGHT, DOWN, LEFT = 1, 2, 4, 8
HORIZONTAL, VERTICAL = LEFT | RIGHT, UP | DOWN
ARROW = 16  # the cell before a task: the arrowhead
ARROW_CHAR = "→"
MAX_NAME = 24  # cells of a task's name on the graph; longer ones are cut
SWEEPS = 4  # rounds of barycenter ordering (down and up)


def _box_table() -> dict[tuple[int, int], str]:
    """(light directions, heavy directions) -> box drawing character, from the Unicode names
    ("BOX DRAWINGS UP LIGHT AND RIGHT DOWN HEAVY"): every one of the 80 combinations."""
    names = {"UP": UP, "DOWN": DOWN, "LEFT": LEFT, "RIGHT": RIGHT, "VERTICAL": VERTICAL, "HORIZONTAL": HORIZONTAL}
    table = {}
    for code in range(0x2500, 0x2580):
        words = unicodedata.name(chr(code)).split()[2:]
        if not set(words) <= {*names, "LIGHT", "HEAVY", "AND"}:
            continue  # dashed, double, arcs, diagonals
        light = heavy = 0
        weight = "LIGHT"
        for group in " ".join(words).split(" AND "):
            # A group without a weight has the one before ("LIGHT DOWN AND RIGHT").
            weight = next((w for w in group.split() if w in ("LIGHT", "HEAVY")), weight)
            bits = sum(names.get(w, 0) for w in group.split())
            light, heavy = (light, heavy | bits) if weight == "HEAVY" else (light | bits, heavy)
        table[light, heavy] = chr(code)
    return table


BOX = _box_table()
_LIGHT = {ch: light for (light, heavy), ch in BOX.items() if not heavy}
_TRANSLATE = str.maketrans({"\0": " ", chr(ARROW): ARROW_CHAR, **{chr(b): BOX[b, 0] for b in range(1, 16)}})


def heavy(char: str, route: int) -> str:
    """`char` (a light line cell) with the directions in `route` drawn heavy."""
    base = _LIGHT.get(char)
    if base is None or not base & route:
        return char
    return BOX[base & ~route, base & route]


@dataclass(frozen=True)
class Place:
    """Where a task is drawn: its row, first cell and width (glyph, space, name)."""

    row: int
    x: int
    width: int


class GraphLayout:
    """Columns, rows and lanes of one DAG; built once, read by row."""

    def __init__(self, order: Sequence[str], deps: Mapping[str, Sequence[str]],
                 width_of: Callable[[str], int] = len) -> None:
        """`order`: every task, each after its dependencies; `deps`: each task's
        dependencies; `width_of`: a name's width in cells."""
        self.order = list(order)
        n = len(self.order)
        self._index = index = {name: i for i, name in enumerate(self.order)}
        layer = [0] * n
        dep_ids: list[list[int]] = []
        for i, name in enumerate(self.order):
            ds = [index[d] for d in dict.fromkeys(deps.get(name, ())) if d in index]
            if any(d >= i for d in ds):
                raise ValueError(f"{name!r} comes before one of its dependencies")
            dep_ids.append(ds)
            layer[i] = 1 + max(layer[d] for d in ds) if ds else 0
        # Slots: tasks 0..n-1, then placeholders; `owner` is the task a slot belongs to.
        owner = list(range(n))
        preds: list[list[int]] = [[] for _ in range(n)]
        succs: list[list[int]] = [[] for _ in range(n)]
        bus: dict[int, list[int]] = {}  # task -> its placeholders, layer after layer
        for t, ds in enumerate(dep_ids):
            for d in ds:
                chain = bus.setdefault(d, [])
                while layer[d] + len(chain) + 1 < layer[t]:
                    slot = len(owner)
                    owner.append(d)
                    layer.append(layer[d] + len(chain) + 1)
                    before = chain[-1] if chain else d
                    preds.append([before])
                    succs.append([])
                    succs[before].append(slot)
                    chain.append(slot)
                via = chain[layer[t] - layer[d] - 2] if layer[t] - layer[d] > 1 else d
                preds[t].append(via)
                succs[via].append(t)
        self._n, self._owner, self._preds, self._succs, self._layer = n, owner, preds, succs, layer
        layers: list[list[int]] = [[] for _ in range(max(layer, default=-1) + 1)]
        for slot in sorted(range(len(owner)), key=lambda s: (owner[s], s)):
            layers[layer[slot]].append(slot)
        self._pos = [0] * len(owner)
        self._layers = _order_layers(layers, preds, succs, self._pos)
        self._place(width_of)

    # ---- geometry ----------------------------------------------------------------

    def _place(self, width_of: Callable[[str], int]) -> None:
        n, pos, layers = self._n, self._pos, self._layers
        self._label = [2 + min(width_of(name), MAX_NAME) for name in self.order]  # glyph, space, name
        self.col_x: list[int] = []
        self.col_width = [max((self._label[s] for s in col if s < n), default=1) + 1 for col in layers]
        self._lane: dict[int, int] = {}  # slot -> x of its lane in the channel after it
        lanes = [_pack_lanes(layers[k], layers[k + 1], self._preds, self._succs, pos)
                 for k in range(len(layers) - 1)]
        self._lanes: list[tuple[int, list[int], list[tuple[int, int, frozenset[int]]]]] = []  # x, tops, nets
        x = 0
        for k, col in enumerate(layers):
            self.col_x.append(x)
            x += self.col_width[k]
            if k == len(layers) - 1:
                break
            assigned, count = lanes[k]
            tracks: list[list[tuple[int, int, frozenset[int]]]] = [[] for _ in range(count)]
            for slot in (s for s in col if self._succs[s]):
                lane = assigned.get(slot)
                self._lane[slot] = x if lane is None else x + 1 + lane
                if lane is not None:
                    rows = {pos[slot], *(pos[v] for v in self._succs[slot])}
                    tracks[lane].append((min(rows), max(rows), frozenset(rows)))
            for i, nets in enumerate(tracks):
                nets.sort()
                self._lanes.append((x + 1 + i, [net[0] for net in nets], nets))
            x += count + 4  # lanes, a stub, the arrow, a space
        self.width = x
        self.height = max(map(len, layers), default=0)
        self.places = {self.order[s]: Place(pos[s], self.col_x[k], self._label[s])
                       for k, col in enumerate(layers) for s in col if s < n}
        self.columns = [[self.order[s] for s in col if s < n] for col in layers]
        self.layer = {name: self._layer[i] for i, name in enumerate(self.order)}
        self.row = {name: p.row for name, p in self.places.items()}
        self._rows: list[list[str]] = [[] for _ in range(self.height)]
        for name in (name for col in self.columns for name in col):  # left to right
            self._rows[self.row[name]].append(name)
        self._row_x = [[self.places[name].x for name in names] for names in self._rows]
        self._cache: dict[int, str] = {}

    def _out_start(self, slot: int) -> int:
        """Where the line leaving `slot` starts: after its name and a space, or at a placeholder's column."""
        x = self.col_x[self._layer[slot]]
        return x + self._label[slot] + 1 if slot < self._n else x

    def _in_end(self, slot: int) -> int:
        """The last line cell before `slot`: the arrowhead's left, or all the way into a placeholder."""
        x = self.col_x[self._layer[slot]]
        return x - 1 if slot >= self._n else x - 3

    # ---- rows --------------------------------------------------------------------

    def row_text(self, row: int) -> str:
        """The lines of one row, `width` cells; the tasks' cells are blank (see `places`)."""
        text = self._cache.get(row)
        if text is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            text = self._cache[row] = self._draw(row)
        return text

    def row_tasks(self, row: int, x0: int = 0, x1: int | None = None) -> list[str]:
        """The tasks on a row, left to right; only those with a cell in [x0, x1) if given."""
        if not 0 <= row < self.height:
            return []
        names, xs = self._rows[row], self._row_x[row]
        # A task starting before x0 may reach into the window; tasks never overlap.
        i = max(0, bisect_right(xs, x0) - 1)
        j = len(xs) if x1 is None else bisect_left(xs, x1)
        return [n for n in names[i:j] if self.places[n].x + self.places[n].width > x0]

    def _draw(self, row: int) -> str:
        cells = bytearray(self.width)
        layers = self._layers
        for k in range(len(layers) - 1):
            left, right = layers[k], layers[k + 1]
            if row < len(left) and self._succs[s := left[row]]:
                _span(cells, self._out_start(s), self._lane[s], HORIZONTAL, LEFT)
            if row < len(right):
                t = right[row]
                _span(cells, min(self._lane[p] for p in self._preds[t]), self._in_end(t), RIGHT, HORIZONTAL)
                if t < self._n:
                    cells[self._in_end(t) + 1] = ARROW
        for x, starts, nets in self._lanes:
            i = bisect_right(starts, row) - 1
            if i < 0 or nets[i][1] < row:
                continue
            top, bottom, pins = nets[i]
            vertical = (UP if row > top else 0) | (DOWN if row < bottom else 0)
            if row in pins:
                cells[x] |= vertical
            elif not cells[x] & HORIZONTAL:
                cells[x] = vertical  # a line crossing here keeps its cell: the lane passes under it
        return cells.decode("latin-1").translate(_TRANSLATE)

    # ---- edges -------------------------------------------------------------------

    def edge_cells(self, source: str, target: str) -> list[tuple[int, int, int]]:
        """(row, x, directions) of every cell the edge source -> target is drawn on,
        including the arrowhead; empty if `target` does not depend on `source`."""
        s, t = self._index[source], self._index[target]
        if s not in map(self._owner.__getitem__, self._preds[t]):
            return []
        path = [s]
        while self._layer[path[-1]] + 1 < self._layer[t]:
            path.append(next(v for v in self._succs[path[-1]] if v >= self._n and self._owner[v] == s))
        path.append(t)
        cells: list[tuple[int, int, int]] = []
        pos = self._pos
        for u, v in zip(path, path[1:], strict=False):
            ru, rv, lane = pos[u], pos[v], self._lane[u]
            cells += [(ru, x, HORIZONTAL) for x in range(self._out_start(u), lane)]
            if ru == rv:
                cells.append((ru, lane, HORIZONTAL))
            else:
                down = rv > ru
                cells.append((ru, lane, LEFT | (DOWN if down else UP)))
                cells += [(r, lane, VERTICAL) for r in range(min(ru, rv) + 1, max(ru, rv))]
                cells.append((rv, lane, RIGHT | (UP if down else DOWN)))
            cells += [(rv, x, HORIZONTAL) for x in range(lane + 1, self._in_end(v) + 1)]
        cells.append((pos[t], self._in_end(t) + 1, LEFT))
        return cells

    # ---- finding tasks -----------------------------------------------------------

    def task_at(self, row: int, x: int) -> str | None:
        """The task drawn on cell (row, x), if any."""
        return next(iter(self.row_tasks(row, x, x + 1)), None)

    def step(self, task: str, direction: str) -> str | None:
        """The task above or below `task` in its column ("up", "down"), or the nearest one
        by row in the next column that has tasks ("left", "right"); None at an edge."""
        k, row = self.layer[task], self.row[task]
        if direction in ("up", "down"):
            col = self.columns[k]
            i = col.index(task) + (1 if direction == "down" else -1)
            return col[i] if 0 <= i < len(col) else None
        k += 1 if direction == "right" else -1
        if not 0 <= k < len(self.columns):
            return None
        col = self.columns[k]
        rows = [self.row[name] for name in col]
        i = bisect_left(rows, row)
        near = [j for j in (i - 1, i) if 0 <= j < len(col)]
        return col[min(near, key=lambda j: (abs(rows[j] - row), j))]


def _span(cells: bytearray, a: int, b: int, first: int, last: int) -> None:
    """A horizontal line from cell a to cell b; the ends connect as `first` and `last`."""
    if b > a + 1:
        cells[a + 1:b] = bytes([HORIZONTAL]) * (b - a - 1)  # line cells hold no other bits yet
    if b >= a:
        cells[a] |= first
        cells[b] |= last if b > a else HORIZONTAL


def _order_layers(layers: list[list[int]], preds: list[list[int]], succs: list[list[int]],
                  pos: list[int]) -> list[list[int]]:
    """Barycenter sweeps, down then up, keeping the order with the fewest crossings."""
    _number(layers, pos)
    best, fewest = [list(col) for col in layers], _crossings(layers, succs, pos)
    for _ in range(SWEEPS):
        if not fewest:
            break
        for k in range(1, len(layers)):
            layers[k] = _by_barycenter(layers[k], preds, pos)
        for k in range(len(layers) - 2, -1, -1):
            layers[k] = _by_barycenter(layers[k], succs, pos)
        count = _crossings(layers, succs, pos)
        if count >= fewest:
            break
        best, fewest = [list(col) for col in layers], count
    _number(best, pos)
    return best


def _number(layers: list[list[int]], pos: list[int]) -> None:
    for col in layers:
        for i, v in enumerate(col):
            pos[v] = i


def _by_barycenter(col: list[int], neighbours: list[list[int]], pos: list[int]) -> list[int]:
    """`col` sorted by the mean position of each slot's neighbours; a slot without any keeps its place."""
    moving = sorted((v for v in col if neighbours[v]),
                    key=lambda v: sum(pos[u] for u in neighbours[v]) / len(neighbours[v]))
    it = iter(moving)
    col = [next(it) if neighbours[v] else v for v in col]
    _number([col], pos)
    return col


def _crossings(layers: list[list[int]], succs: list[list[int]], pos: list[int]) -> int:
    """Edge crossings between neighbouring columns."""
    total = 0
    for col in layers[:-1]:
        ends: list[int] = []  # where the edges of the slots above end, sorted
        for u in col:
            targets = [pos[v] for v in succs[u]]
            total += sum(len(ends) - bisect_right(ends, p) for p in targets)  # those ending below cross
            for p in targets:
                insort(ends, p)
    return total


def _pack_lanes(left: list[int], right: list[int], preds: list[list[int]], succs: list[list[int]],
                pos: list[int]) -> tuple[dict[int, int], int]:
    """Lanes of the channel between two columns: slot -> lane (0 nearest the left column),
    and how many. A source whose targets are all on its own row needs none."""
    span: dict[int, tuple[int, int]] = {}
    for s in left:
        rows = [pos[v] for v in succs[s]]
        if rows and (len(rows) > 1 or rows[0] != pos[s]):
            span[s] = (min(pos[s], *rows), max(pos[s], *rows))
    # On a row holding both a source and a target, the source's lane must lie left of every
    # other lane entering the target, or the two lines would run into each other.
    after: dict[int, list[int]] = {}
    waiting = dict.fromkeys(span, 0)
    for r, t in enumerate(right):
        s = left[r] if r < len(left) else None
        if s in span:
            for p in preds[t]:
                if p != s and p in span:
                    after.setdefault(s, []).append(p)
                    waiting[p] += 1
    nets = sorted(span, key=span.__getitem__)
    starts = [span[s][0] for s in nets]
    rank = {s: i for i, s in enumerate(nets)}
    free = [i for i, s in enumerate(nets) if not waiting[s]]  # indices into nets, in start order
    blocked = {i for i, s in enumerate(nets) if waiting[s]}
    lane_of: dict[int, int] = {}
    lanes = 0
    while free or blocked:
        placed: list[int] = []
        end = -1
        # The left-edge algorithm: fill one lane from the top with what may go there.
        while (j := bisect_left(free, bisect_right(starts, end))) < len(free):
            placed.append(nets[free.pop(j)])
            end = span[placed[-1]][1]
        if not placed:  # constraints in a cycle: break it at the topmost waiting source
            placed.append(nets[min(blocked)])
            blocked.discard(rank[placed[-1]])
        for s in placed:
            lane_of[s] = lanes
            for p in after.get(s, ()):
                waiting[p] -= 1
                if not waiting[p] and rank[p] in blocked:
                    blocked.discard(rank[p])
                    insort(free, rank[p])
        lanes += 1
    return lane_of, lanes


def critical_path(order: Sequence[str], deps: Mapping[str, Sequence[str]],
                  durations: Mapping[str, float]) -> list[str]:
    """The chain of dependencies with the most seconds in it (a task not started counts 0),
    ties going to the task earlier in `order`; [] when no task took any time."""
    index = {name: i for i, name in enumerate(order)}
    total: dict[str, float] = {}
    before: dict[str, str | None] = {}

    def heaviest(names) -> str | None:
        return min(names, key=lambda n: (-total[n], index[n]), default=None)

    for name in order:
        before[name] = best = heaviest(d for d in deps.get(name, ()) if d in total)
        total[name] = max(0.0, durations.get(name) or 0.0) + (total[best] if best else 0.0)
    node = heaviest(order)
    if node is None or total[node] <= 0:
        return []
    path: list[str] = []
    while node is not None:
        path.append(node)
        node = before[node]
    return path[::-1]
