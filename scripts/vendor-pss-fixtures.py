#!/usr/bin/env python3
"""Store the Pod Security Standards fixtures compactly under tests/data/pss/.

Source: ../shared/conformance/pss (upstream kubernetes/pod-security-admission
test/testdata, Apache-2.0). The 4,537 fixture files hold only a few hundred
distinct contents, so each distinct content is stored once under
tests/data/pss/contents/<id>.yaml and index.tsv maps every fixture path to its
content id. tests/pss_conformance.rs expands the index back into every fixture.

Run again (from the repository root) to refresh the copy:
    python3 scripts/vendor-pss-fixtures.py [SOURCE_DIR]
"""
import hashlib
import os
import shutil
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "conformance", "pss")
dst = os.path.join(root, "tests", "data", "pss")
contents_dir = os.path.join(dst, "contents")

paths = []
for level in ("baseline", "restricted"):
    for dirpath, _, files in os.walk(os.path.join(src, level)):
        for f in files:
            if f.endswith(".yaml"):
                paths.append(os.path.relpath(os.path.join(dirpath, f), src))
paths.sort()
if not paths:
    sys.exit(f"no fixtures under {src}")

if os.path.isdir(contents_dir):
    shutil.rmtree(contents_dir)
os.makedirs(contents_dir)
index = []
seen = {}
for p in paths:
    with open(os.path.join(src, p), "rb") as fh:
        data = fh.read()
    cid = hashlib.sha256(data).hexdigest()[:12]
    if cid in seen and seen[cid] != data:
        sys.exit(f"content id collision at {p}")
    if cid not in seen:
        seen[cid] = data
        with open(os.path.join(contents_dir, cid + ".yaml"), "wb") as out:
            out.write(data)
    index.append(f"{p}\t{cid}\n")
with open(os.path.join(dst, "index.tsv"), "w") as out:
    out.write("# fixture path<TAB>content id (contents/<id>.yaml); see README.md\n")
    out.writelines(index)
print(f"{len(paths)} fixtures, {len(seen)} distinct contents -> {dst}")
