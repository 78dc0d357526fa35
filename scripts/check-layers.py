#!/usr/bin/env python3
"""Checks that src/ keeps its shape: stages import only downward, and no
module imports another in a circle.

Stages, lowest first (a file may use its own stage and any stage before it):
capture, tls, classify, verdict, flow, report, pipeline, shell. `lib.rs`
and `main.rs` sit on top. Modules are files (`a/b.rs` is `a::b`, `a/mod.rs`
is `a`); an edge is a `crate::`, `super::` or `self::` path in production
code (a file's `#[cfg(test)] mod tests` at the bottom is left out: tests may
reach anywhere). Run from anywhere: `python3 scripts/check-layers.py`.
Exit status 1 with one line per finding when the shape is broken.
"""

import re
import sys
from pathlib import Path

STAGES = ["capture", "tls", "classify", "verdict", "flow", "workload", "report", "pipeline", "shell"]
SRC = Path(__file__).resolve().parent.parent / "src"
PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
GROUP = re.compile(r"\b(crate|super|self)((?:::\w+)*)::\{([^}]*)\}")


def module_of(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def production_text(path):
    text = path.read_text()
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests\b", text, re.M)
    text = text[: cut.start()] if cut else text
    # Comments and strings name modules without using them.
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def resolve(base, own, is_dir_module, modules):
    """The longest known module named by a path of segments."""
    kind, segs = base
    if kind == "crate":
        start = ()
    else:
        here = own if is_dir_module else own[:-1]
        start = here if kind == "self" else here[:-1]
        if kind == "self" and not is_dir_module:
            start = own
    best = None
    for i in range(len(segs) + 1):
        cand = tuple(start) + tuple(segs[:i])
        if cand in modules:
            best = cand
    return best


def edges():
    files = sorted(SRC.rglob("*.rs"))
    modules = {module_of(f) for f in files}
    found = {}
    for f in files:
        own = module_of(f)
        is_dir = f.name in ("mod.rs", "lib.rs", "main.rs")
        text = production_text(f)
        refs = []
        for m in GROUP.finditer(text):
            prefix = [s for s in m.group(2).split("::") if s]
            for item in m.group(3).split(","):
                head = item.strip().split("::")
                head = [h for h in head if h and h != "self" and re.match(r"^\w+$", h)]
                refs.append((m.group(1), prefix + head))
        for m in PATH.finditer(text):
            refs.append((m.group(1), [s for s in m.group(2).split("::") if s]))
        for kind, segs in refs:
            target = resolve((kind, segs), own, is_dir, modules)
            if target is None or target == own or target == ():
                continue
            # A parent naming its child in `pub mod` is not a use.
            found.setdefault(own, set()).add(target)
    return modules, found


def stage(mod):
    return STAGES.index(mod[0]) if mod and mod[0] in STAGES else len(STAGES)


def cycles(graph):
    """Strongly connected components with more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(mod):
    return "::".join(mod) or "crate"


def main():
    modules, graph = edges()
    problems = []
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            if src and dst and src[0] in STAGES and stage(dst) > stage(src):
                problems.append(f"upward import: {name(src)} (stage {src[0]}) uses {name(dst)} (stage {dst[0]})")
    for comp in cycles(graph):
        problems.append("import cycle: " + " <-> ".join(name(m) for m in comp))
    for p in problems:
        print(p)
    n_edges = sum(len(v) for v in graph.values())
    print(f"check-layers: {len(modules)} modules, {n_edges} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
