#!/usr/bin/env python3
"""Import cycles between the files of a Rust module tree (default: src/query).

Module granularity is the file. An edge A -> B means file A names an item
of file B through `use`/inline paths starting with `super::`, `self::`,
`crate::<root>::` or a child module's name. Names re-exported by a
module (`pub use x::Y`) resolve to the file that defines them, so a
facade `mod.rs` that only re-exports is not itself part of a cycle. Test
code (`tests.rs` files, `#[cfg(test)] mod tests { ... }` blocks and
`#[cfg(test)] mod x;` files) is ignored.

With --siblings, only edges between siblings count (an edge A -> B is
lifted to the children of their closest common module that contain A and
B; edges between a module and its own descendants are dropped): a
directory module's children may use what its `mod.rs` defines, and the
mutual recursion of a recursive grammar (an expression parses its
operands, a `$lookup` runs a sub-pipeline) stays inside its module.

Usage: .ci/module-cycles.py [--siblings] [src/query]
(prints the edges in cycles, exits 1 if there are any)
"""

import os
import re
import sys

ARGS = [a for a in sys.argv[1:] if a != "--siblings"]
SIBLINGS = "--siblings" in sys.argv[1:]
ROOT = ARGS[0] if ARGS else "src/query"
CRATE_SRC = ROOT.split("/")[0]
ROOT_MOD = tuple(ROOT.split("/")[1:])


def module_of(path):
    rel = os.path.relpath(path, CRATE_SRC)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    # Inline test modules and cfg(test) module declarations.
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text)
    if m:
        text = text[: m.start()]
    comments = re.compile(r"//[^\n]*")
    return comments.sub("", text)


def parse_tree(s, i=0):
    """Parses a use tree from s[i:]; returns (list of paths, next index)."""
    paths = []
    prefix = []
    tok = re.compile(r"\s*(\w+|::|\{|\}|,|\*|as\b)")
    while i < len(s):
        m = tok.match(s, i)
        if not m:
            break
        t = m.group(1)
        if t == "{":
            inner, i = parse_tree(s, m.end())
            paths.extend(prefix + p for p in inner)
            prefix = None
            continue
        if t == "}":
            if prefix:
                paths.append(prefix)
            return paths, m.end()
        if t == ",":
            if prefix:
                paths.append(prefix)
            prefix = []
        elif t == "::":
            pass
        elif t == "as":
            m2 = tok.match(s, m.end())
            i = m2.end()
            continue
        elif prefix is not None:
            prefix.append(t)
        i = m.end()
    if prefix:
        paths.append(prefix)
    return paths, i


files = {}
for dirpath, _, names in os.walk(ROOT):
    for n in names:
        if n.endswith(".rs") and n != "tests.rs" and not n.endswith("_tests.rs"):
            p = os.path.join(dirpath, n)
            files[module_of(p)] = p

texts = {m: strip_tests(open(p).read()) for m, p in files.items()}
# Drop cfg(test) module files.
for m, t in list(texts.items()):
    for child in re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\(crate\))?\s+)?mod\s+(\w+)\s*;", t):
        texts.pop(m + (child,), None)
modules = set(texts)


def children(m):
    return {x[-1] for x in modules if len(x) == len(m) + 1 and x[: len(m)] == m}


def raw_paths(m):
    """Module-relative paths named by file m, as absolute tuples."""
    text = texts[m]
    out = []
    for u in re.finditer(r"\buse\s+([^;]+);", text):
        trees, _ = parse_tree(u.group(1))
        out.extend(trees)
    body = re.sub(r"\buse\s+[^;]+;", "", text)
    for p in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", body):
        out.append(p.group(0).split("::"))
    kids = children(m)
    for p in re.finditer(r"(?<![:\w])(\w+)::\w+", body):
        if p.group(1) in kids:
            out.append(p.group(0).split("::"))
    res = []
    for p in out:
        cur = list(m)
        if p[0] == "crate":
            cur, p = [], p[1:]
        elif p[0] in ("super", "self"):
            while p and p[0] in ("super", "self"):
                if p[0] == "super":
                    cur = cur[:-1]
                p = p[1:]
        elif p[0] in kids:
            pass
        else:
            continue  # extern crate or std
        res.append(tuple(cur) + tuple(p))
    return res


def reexports(m):
    """name -> absolute path for `pub use` lines of module m."""
    out = {}
    for u in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", texts[m]):
        trees, _ = parse_tree(u.group(1))
        for p in trees:
            if p[0] == "crate":
                ab = tuple(p[1:])
            elif p[0] in ("super", "self"):
                cur = list(m)
                while p and p[0] in ("super", "self"):
                    if p[0] == "super":
                        cur = cur[:-1]
                    p = p[1:]
                ab = tuple(cur) + tuple(p)
            else:
                ab = m + tuple(p)
            out[p[-1]] = ab
    return out


REEXPORTS = {m: reexports(m) for m in modules}


def resolve(path, depth=0):
    """The file (module) defining the item at absolute path."""
    path = tuple(path)
    if path in modules:
        return path
    for k in range(len(path) - 1, 0, -1):
        mod = path[:k]
        if mod in modules:
            name = path[k]
            if depth < 10 and name in REEXPORTS[mod] and REEXPORTS[mod][name] != path:
                return resolve(REEXPORTS[mod][name] + path[k + 1:], depth + 1)
            return mod
    return None


edges = {m: set() for m in modules}
for m in modules:
    for p in raw_paths(m):
        if p[: len(ROOT_MOD)] != ROOT_MOD:
            continue
        t = resolve(p)
        if t and t != m:
            edges[m].add(t)


if SIBLINGS:
    lifted = {m: set() for m in modules}
    for a, targets in edges.items():
        for b in targets:
            k = 0
            while k < min(len(a), len(b)) and a[k] == b[k]:
                k += 1
            if k < len(a) and k < len(b):
                lifted[a[: k + 1]].add(b[: k + 1])
    edges = lifted


def tarjan():
    index, low, on, st, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        st.append(v)
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
                w = st.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    return out


name = lambda m: "::".join(m) or "crate"
sccs = [sorted(c) for c in tarjan() if len(c) > 1]
kind = "sibling edges" if SIBLINGS else "edges"
print(f"{len(modules)} files, {sum(len(e) for e in edges.values())} {kind}")
for c in sorted(sccs, key=len, reverse=True):
    print(f"cycle of {len(c)} files: " + ", ".join(name(m) for m in c))
    cs = set(c)
    for m in c:
        for t in sorted(edges[m] & cs):
            print(f"    {name(m)} -> {name(t)}")
if not sccs:
    print("no cycles")
sys.exit(1 if sccs else 0)
