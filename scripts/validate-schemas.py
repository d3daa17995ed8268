#!/usr/bin/env python3
"""Validates qfc-lab's machine-readable outputs against docs/schema/.

Usage:
  validate-schemas.py DIR...             every file under each DIR that
                                         docs/schema/index.json names
  validate-schemas.py --as SCHEMA FILE   one file against one schema file

Uses Python's jsonschema (Draft 2020-12; the venv of scripts/setup.sh), a
validator qfc-lab did not write. Every schema used is first checked against
the metaschema. A JSON-lines output (`"lines": true` in the index) is
validated line by line. Prints one JSON object on stdout:
  {"validated": [[schema, file], ...], "errors": ["file: /path: message", ...]}
A .json or .jsonl file under a DIR that no schema describes is an error too.
Exit 0 when every file is valid, 1 when one is not, 2 on bad usage.
"""
import fnmatch
import json
import os
import sys

from jsonschema import Draft202012Validator

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "schema")


def matches(pattern, rel):
    """`*` matches within one path segment, as lab::schema::matches."""
    p, r = pattern.split("/"), rel.split("/")
    return len(p) == len(r) and all(fnmatch.fnmatchcase(b, a) for a, b in zip(p, r))


def pairs_under(root, index, unmatched):
    """(schema, file) for every file under root that a schema names; JSON
    files that no schema names are appended to `unmatched`."""
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            found = False
            for s in index["schemas"]:
                if any(matches(p, rel) for p in s["paths"]):
                    out.append((s["file"], path))
                    found = True
            if not found and (f.endswith(".json") or f.endswith(".jsonl")):
                unmatched.append(path)
    return out


def main(argv):
    with open(os.path.join(SCHEMA_DIR, "index.json")) as f:
        index = json.load(f)
    lines = {s["file"]: s.get("lines", False) for s in index["schemas"]}
    unmatched = []
    if len(argv) == 3 and argv[0] == "--as":
        pairs = [(argv[1], argv[2])]
    elif argv and not argv[0].startswith("-"):
        pairs = sorted(p for root in argv for p in pairs_under(root, index, unmatched))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    validators, errors = {}, []
    for schema_file, path in pairs:
        if schema_file not in validators:
            with open(os.path.join(SCHEMA_DIR, schema_file)) as f:
                schema = json.load(f)
            Draft202012Validator.check_schema(schema)
            validators[schema_file] = Draft202012Validator(schema)
        with open(path) as f:
            if lines.get(schema_file):
                docs = [(f"{path}:{n}", json.loads(l)) for n, l in enumerate(f, 1) if l.strip()]
            else:
                docs = [(path, json.load(f))]
        for where_file, doc in docs:
            for e in validators[schema_file].iter_errors(doc):
                where = "/".join(str(p) for p in e.absolute_path)
                errors.append(f"{where_file}: /{where}: {e.message[:300]}")
    errors += [f"{u}: a JSON file that no schema in docs/schema/index.json describes" for u in sorted(unmatched)]
    print(json.dumps({"validated": pairs, "errors": errors}))
    print(f"{len(pairs)} files validated against docs/schema/, {len(errors)} errors", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
