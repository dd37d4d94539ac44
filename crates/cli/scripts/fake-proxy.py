#!/usr/bin/env python3
"""Writes a `file://` GOPROXY of real-shaped modules, and a program that needs them.

Each module version is what a proxy serves (`<escaped path>/@v/{list,<v>.info,<v>.mod,<v>.zip}`,
zip entries `module@version/name`, deflated), so `go mod download` fills a module cache from it
exactly as from proxy.golang.org. Used by tests/bundle.rs and bench-bundle.sh.

  fake-proxy.py --proxy DIR --app DIR chain
      example.com/app → example.com/a → example.com/b → example.com/Upper/c (an escaped path),
      and c's go.mod requires example.com/d, whose package nothing imports.
  fake-proxy.py --proxy DIR --app DIR many --count 30 --size 1048576
      example.com/bench/mNN, each with a payload of SIZE random (incompressible) bytes; the
      app imports all of them.
"""

import argparse
import json
import os
import random
import zipfile

VERSION = "v1.0.0"
GO = "1.19"


def escape(path):
    return "".join("!" + c.lower() if c.isupper() else c for c in path)


def module(proxy, path, requires, files):
    gomod = f"module {path}\n\ngo {GO}\n"
    if requires:
        gomod += "\nrequire (\n" + "".join(f"\t{r} {VERSION}\n" for r in requires) + ")\n"
    files = dict(files, **{"go.mod": gomod})
    at_v = os.path.join(proxy, escape(path), "@v")
    os.makedirs(at_v, exist_ok=True)
    with open(os.path.join(at_v, "list"), "w") as f:
        f.write(VERSION + "\n")
    with open(os.path.join(at_v, VERSION + ".info"), "w") as f:
        json.dump({"Version": VERSION, "Time": "2024-01-01T00:00:00Z"}, f)
    with open(os.path.join(at_v, VERSION + ".mod"), "w") as f:
        f.write(gomod)
    with zipfile.ZipFile(os.path.join(at_v, VERSION + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            z.writestr(f"{path}@{VERSION}/{name}", files[name])


def app(dir, requires, imports):
    os.makedirs(dir, exist_ok=True)
    with open(os.path.join(dir, "go.mod"), "w") as f:
        f.write(f"module example.com/app\n\ngo {GO}\n\nrequire (\n")
        f.write("".join(f"\t{r} {VERSION}\n" for r in requires) + ")\n")
    body = "".join(f'\tprintln({alias}.Name())\n' for alias, _ in imports)
    with open(os.path.join(dir, "main.go"), "w") as f:
        f.write("package main\n\nimport (\n")
        f.write("".join(f'\t{alias} "{p}"\n' for alias, p in imports))
        f.write(")\n\nfunc main() {\n" + body + "}\n")


def go_file(pkg, name, calls=None):
    if calls:
        alias, path = calls
        return (f'package {pkg}\n\nimport {alias} "{path}"\n\n'
                f'func Name() string {{ return "{name}/" + {alias}.Name() }}\n')
    return f'package {pkg}\n\nfunc Name() string {{ return "{name}" }}\n'


def chain(proxy, app_dir):
    module(proxy, "example.com/d", [], {"d.go": go_file("d", "d")})
    module(proxy, "example.com/Upper/c", ["example.com/d"], {"c.go": go_file("c", "c"),
                                                            "LICENSE": "public domain\n"})
    module(proxy, "example.com/b", ["example.com/Upper/c"],
           {"b.go": go_file("b", "b", ("c", "example.com/Upper/c"))})
    module(proxy, "example.com/a", ["example.com/b"],
           {"a.go": go_file("a", "a", ("b", "example.com/b"))})
    app(app_dir, ["example.com/a"], [("a", "example.com/a")])


def many(proxy, app_dir, count, size):
    rnd = random.Random(16)
    paths = [f"example.com/bench/m{i:02d}" for i in range(count)]
    for i, p in enumerate(paths):
        payload = rnd.randbytes(size)
        module(proxy, p, [], {f"m{i:02d}.go": go_file(f"m{i:02d}", p), "payload.bin": payload})
    app(app_dir, paths, [(f"m{i:02d}", p) for i, p in enumerate(paths)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--app", required=True)
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("chain")
    m = sub.add_parser("many")
    m.add_argument("--count", type=int, default=30)
    m.add_argument("--size", type=int, default=1 << 20)
    a = ap.parse_args()
    if a.what == "chain":
        chain(a.proxy, a.app)
    else:
        many(a.proxy, a.app, a.count, a.size)


if __name__ == "__main__":
    main()
