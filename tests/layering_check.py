#!/usr/bin/env python3
"""The layering rule of docs/design.md section 10, checked on the sources.

Each room (CMake `abm_room(NAME DIR DEPENDS ...)` in CMakeLists.txt) may include only its
own headers and those of the rooms it depends on, directly or through them. A static
library cannot stop a header-only include (a template, an inline function), so this reads
every `#include "room/..."` of every room and fails naming each one that points up.

Usage: layering_check.py SOURCE_DIR [--self-test]
"""
import os
import re
import sys


def rooms(source_dir):
    """{name: (dir, set of direct dependency names)} from the abm_room calls."""
    text = open(os.path.join(source_dir, "CMakeLists.txt")).read()
    out = {}
    for m in re.finditer(r"^abm_room\((\w+)\s+(\S+)(?:\s+DEPENDS\s+([^)]*))?\)", text, re.M):
        deps = {d[len("abm_"):] for d in (m.group(3) or "").split()}
        out[m.group(1)] = (m.group(2), deps)
    return out


def closure(graph):
    allowed = {}
    def walk(name):
        if name not in allowed:
            allowed[name] = {name}
            for d in graph[name][1]:
                allowed[name] |= walk(d)
        return allowed[name]
    for name in graph:
        walk(name)
    return allowed


def violations(source_dir, graph):
    allowed = closure(graph)
    # "checkpoints/x.h" -> checkpoints; "model/x.h" -> model (src/ is an include root)
    by_prefix = {os.path.basename(d): name for name, (d, _) in graph.items()}
    bad = []
    for name, (d, _) in graph.items():
        folder = os.path.join(source_dir, d)
        for f in sorted(os.listdir(folder)):
            if not f.endswith((".h", ".cpp")):
                continue
            path = os.path.join(folder, f)
            for no, line in enumerate(open(path, errors="replace"), 1):
                m = re.match(r'\s*#\s*include\s+"([^/"]+)/', line)
                if not m or m.group(1) not in by_prefix:
                    continue
                target = by_prefix[m.group(1)]
                if target not in allowed[name]:
                    bad.append(f"{os.path.join(d, f)}:{no}: room {name} includes {m.group(1)}/ "
                               f"(room {target}), which it does not depend on")
    return bad


def main():
    source_dir = sys.argv[1]
    graph = rooms(source_dir)
    if len(graph) < 8:
        print(f"layering_check: found only {len(graph)} abm_room calls in CMakeLists.txt")
        return 1
    if "--self-test" in sys.argv:  # the check must be able to fail: an upward include
        graph["checkpoints"] = (graph["checkpoints"][0], set())
        if not violations(source_dir, graph):
            print("layering_check: self-test: removing checkpoints' dependencies found nothing")
            return 1
        print("layering_check: self-test: an upward include is found")
        return 0
    bad = violations(source_dir, graph)
    for b in bad:
        print(b)
    print(f"layering_check: {len(graph)} rooms, {len(bad)} include(s) against the layering")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
