#!/usr/bin/env python3
"""Lists import circles between sibling modules in every crate of the workspace.

For each module with children, it draws an edge from child A to child B when any file under A
names a path under B (`crate::…`, `super::…`, or a `use` tree expanding to one), and reports
every strongly connected component of more than one child. Parents may use their children and
children their parent; siblings must form a DAG. Test-only modules (`tests.rs`, `tests/`,
`#[cfg(test)] mod …`) are left out: a test may reach across.

Usage: scripts/module-cycles.py [crate dir…]   (exit status 1 when a circle exists)
"""

import re
import sys
from pathlib import Path

CRATES = ["crds", "operator", "gateway", "e2e", "examples/samples"]


def strip(text):
    """Drops comments, string literals and `#[cfg(test)] mod x { … }` blocks."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def use_paths(tree, prefix=()):
    """Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths."""
    tree = tree.strip()
    if not tree:
        return []
    if tree.startswith("{") and tree.endswith("}"):
        parts, depth, cur = [], 0, ""
        for ch in tree[1:-1]:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        parts.append(cur)
        return [p for part in parts for p in use_paths(part, prefix)]
    head, sep, rest = tree.partition("::")
    head = head.split(" as ")[0].strip()
    if not sep:
        return [prefix + (head,)]
    if rest.strip().startswith("{"):
        return use_paths(rest, prefix + (head,))
    return use_paths(rest, prefix + (head,))


def module_path(src, file):
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    return tuple(parts)


def resolve(path, here):
    """Absolute module path for `crate::`/`super::`/`self::` paths, else None."""
    if path[0] == "crate":
        return path[1:]
    if path[0] in ("super", "self"):
        base = list(here)
        while path and path[0] in ("super", "self"):
            if path[0] == "super":
                base.pop()
            path = path[1:]
        return tuple(base) + tuple(path)
    return None


def crate_cycles(crate):
    src = Path(crate) / "src"
    files = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts[:1]]
    modules = {module_path(src, f) for f in files}
    edges = {}
    for f in files:
        here = module_path(src, f)
        if "tests" in here or f.name == "tests.rs":
            continue
        # a file `x.rs` or `x/mod.rs` is module x; its `super` is x's parent
        text = strip(f.read_text())
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            paths += use_paths(re.sub(r"\s+", " ", m.group(1)))
        paths += [tuple(p.split("::")) for p in re.findall(r"\b(?:crate|super|self)(?:::\w+)+", text)]
        for p in paths:
            target = resolve(p, here)
            if not target:
                continue
            # the longest known module that prefixes the target
            while target and target not in modules:
                target = target[:-1]
            # find the common parent and the two children under it
            k = 0
            while k < min(len(here), len(target)) and here[k] == target[k]:
                k += 1
            if k < len(here) and k < len(target):
                parent = here[:k]
                edges.setdefault(parent, set()).add((here[k], target[k]))
    cycles = []
    for parent, es in sorted(edges.items()):
        graph = {}
        for a, b in es:
            graph.setdefault(a, set()).add(b)
        for scc in tarjan(graph):
            if len(scc) > 1:
                cycles.append((parent, sorted(scc), es))
    return cycles


def tarjan(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

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
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            out.append(scc)

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    root = Path(__file__).resolve().parent.parent
    crates = sys.argv[1:] or [str(root / c) for c in CRATES]
    found = 0
    for crate in crates:
        for parent, scc, es in crate_cycles(crate):
            found += 1
            where = Path(crate).name + "::" + "::".join(parent) if parent else Path(crate).name
            print(f"{where}: {' <-> '.join(scc)}")
            for a, b in sorted(es):
                if a in scc and b in scc:
                    print(f"    {a} -> {b}")
    if found:
        print(f"{found} import circle(s)")
        return 1
    print("no import circles between sibling modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
