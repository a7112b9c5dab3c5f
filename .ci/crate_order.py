#!/usr/bin/env python3
"""Checks that no workspace crate depends on a crate listed after it in ARCHITECTURE.md's code
map (the documented order: dependencies point up the table, never down). Dev-dependencies are
exempt (test kits may use anything). Exits 1 naming each upward edge."""
import json
import re
import subprocess
import sys

table = open("ARCHITECTURE.md", encoding="utf-8").read().split("## Code map", 1)[1]
order = re.findall(r"^\| `(strata[a-z-]*)` \|", table, flags=re.M)
rank = {name: i for i, name in enumerate(order)}
meta = json.loads(
    subprocess.check_output(["cargo", "metadata", "--no-deps", "--format-version", "1", "--locked"])
)
problems = []
for package in meta["packages"]:
    name = package["name"]
    if name not in rank:
        problems.append(f"{name} is not in ARCHITECTURE.md's code map")
        continue
    for dep in package["dependencies"]:
        if dep["kind"] == "dev" or not dep["name"].startswith("strata"):
            continue
        if dep["name"] not in rank:
            problems.append(f"{name} -> {dep['name']}: not in the code map")
        elif rank[dep["name"]] > rank[name]:
            problems.append(f"{name} -> {dep['name']}: imports a crate listed below it")
for problem in problems:
    print(f"crate order: {problem}", file=sys.stderr)
print(f"crate order: {len(order)} crates in the documented order, {len(problems)} problems")
sys.exit(1 if problems else 0)
