#!/usr/bin/python3
"""Merges the generators' outputs into expected.json and versions.json.

usage: merge.py corpus.json LABEL=output.json...
(e.g. python=python.json node=node.json go=go.json); each generator's
versions go under its LABEL in versions.json. Every case of the corpus gets every parser that ran on it (an empty object
when it found nothing); keys are sorted so the files are deterministic.
"""

import json
import os
import sys


def main():
    corpus = json.load(open(sys.argv[1], encoding="utf-8"))
    expected = {c["name"]: {} for c in corpus["cases"]}
    versions = {}
    for arg in sys.argv[2:]:
        lang, sep, path = arg.partition("=")
        if not sep:
            sys.exit(f"merge.py: {arg}: want LABEL=output.json")
        out = json.load(open(path, encoding="utf-8"))
        versions[lang] = out["versions"]
        for name, parsers in out["results"].items():
            if name not in expected:
                sys.exit(f"merge.py: {path}: unknown case {name}")
            for parser, slots in parsers.items():
                if parser in expected[name]:
                    sys.exit(f"merge.py: {path}: parser {parser} reported twice for {name}")
                expected[name][parser] = slots
    for name, parsers in expected.items():
        if not parsers:
            sys.exit(f"merge.py: no parser reported on case {name}")
    here = os.path.dirname(os.path.abspath(__file__))
    for fname, data in (("expected.json", expected), ("versions.json", versions)):
        with open(os.path.join(here, fname), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True, ensure_ascii=True)
            f.write("\n")
    print(f"expected.json: {len(expected)} cases, "
          f"{len({p for ps in expected.values() for p in ps})} parsers", file=sys.stderr)


if __name__ == "__main__":
    main()
