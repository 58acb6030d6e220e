#!/usr/bin/env python3
"""Finds import cycles between the modules of each crate: a layer may use only layers below it.

Usage: hack/module-cycles.py [CRATE_DIR...]   (default: every workspace crate with a src/lib.rs)

A module is a file (`src/a/b.rs` or `src/a/b/mod.rs` is `a::b`). Module A uses module B when A's
code (tests excluded) names an item of B through `crate::`, `super::`, `self::` or a child
module's name, in a `use` or inline. Paths that name a module's ancestor are left out: a parent
declares its children and re-exports them, and a child using its parent's shared types is the
layering Rust asks for. Every strongly connected component of two or more modules is printed
as a cycle, with the edges that close it; the exit status is 1 when there is one.
"""
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def modules_of(src):
    """Maps module path (tuple) -> file for every .rs file under src reachable as a module."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        parts = () if rel == "." else tuple(rel.split(os.sep))
        if parts and parts[0] == "bin":
            continue
        for f in files:
            if not f.endswith(".rs"):
                continue
            stem = f[:-3]
            if not parts and stem in ("lib", "main"):
                mods[()] = os.path.join(dirpath, f)
            elif stem == "mod":
                mods[parts] = os.path.join(dirpath, f)
            else:
                mods[parts + (stem,)] = os.path.join(dirpath, f)
    return mods


def strip(text):
    """Removes comments, string literals and `#[cfg(test)]` modules (tests import freely)."""
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text, re.M)
    if m:
        text = text[: m.start()]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'r#*"(.|\n)*?"#*', '""', text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    return text


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = tree.replace(" ", "").replace("\n", "")
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
    if start is None:
        return [tree]
    prefix, inner = tree[:start], tree[start + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p:
            out += [prefix + q for q in expand_use(p)]
    return out


def paths_in(code):
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths += expand_use(m.group(1))
    code = re.sub(r"\buse\s+[^;]+;", "", code)
    paths += re.findall(rf"\b(?:crate|super|self)(?:::{IDENT})+", code)
    return paths


def resolve(path, here, mods):
    """The module a path names (the longest module prefix), or None if outside the crate."""
    segs = [s for s in path.split("::") if s]
    segs = [s.split(" as ")[0] for s in segs]
    if not segs:
        return None
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    elif here + (segs[0],) in mods:
        base = here
    else:
        return None
    target = base
    for s in segs:
        if target + (s,) in mods:
            target = target + (s,)
        else:
            break
    return target


def edges_of(mods):
    edges = {m: {} for m in mods}
    for m, f in mods.items():
        with open(f, encoding="utf-8") as fh:
            code = strip(fh.read())
        for p in paths_in(code):
            t = resolve(p, m, mods)
            if t is None or t == m or m[: len(t)] == t or t[: len(m)] == m:
                continue
            edges[m].setdefault(t, p)
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of two or more nodes."""
    index, low, stack, on, out = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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

    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "crate"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    crates = sys.argv[1:] or sorted(
        d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "src", "lib.rs"))
    )
    found = 0
    for c in crates:
        mods = modules_of(os.path.join(root, c, "src"))
        edges = edges_of(mods)
        comps = cycles(edges)
        for comp in comps:
            found += 1
            members = set(comp)
            print(f"{c}: cycle between {', '.join(name(m) for m in comp)}")
            for m in comp:
                for t, p in sorted(edges[m].items()):
                    if t in members:
                        print(f"    {name(m)} -> {name(t)}   ({p})")
        if not comps:
            print(f"{c}: {len(mods)} modules, no cycle")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
