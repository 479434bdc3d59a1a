#!/usr/bin/env python3
"""layers.py — the engine's include graph has layers: the static library (engine/meson.build's
engine_sources and the headers they include) never includes the command line's headers (cli.h,
cmdutil.h), and no header includes itself through others (no cycle). Prints each violation and
exits 1; prints the layer count and exits 0 when there is none."""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..')
eng = os.path.join(root, 'engine')
meson = open(os.path.join(eng, 'meson.build')).read()
a = meson.index('engine_sources = files(')
lib = re.findall(r"'([^']+\.c)'", meson[a:meson.index(')', a)])
CLI = {'cli.h', 'cmdutil.h'}


def includes(name):
    p = os.path.join(eng, name)
    if not os.path.exists(p):
        return []
    return [i for i in re.findall(r'^#include "([^"]+)"', open(p).read(), re.M)
            if os.path.exists(os.path.join(eng, i))]


bad = []
# Everything the library reaches, through headers too.
seen, todo = set(), list(lib)
while todo:
    f = todo.pop()
    if f in seen:
        continue
    seen.add(f)
    for i in includes(f):
        if i in CLI:
            bad.append(f'{f} includes {i}: the library must not depend on the command line')
        todo.append(i)

# Cycles among headers, and each header's layer (1 + the highest layer it includes).
headers = sorted(f for f in os.listdir(eng) if f.endswith('.h'))
layer, state = {}, {}


def visit(h, path):
    if state.get(h) == 'done':
        return layer[h]
    if state.get(h) == 'open':
        bad.append('include cycle: ' + ' -> '.join(path[path.index(h):] + [h]))
        return 0
    state[h] = 'open'
    layer[h] = 1 + max([visit(i, path + [h]) for i in includes(h) if i.endswith('.h')] or [0])
    state[h] = 'done'
    return layer[h]


for h in headers:
    visit(h, [])
for b in bad:
    print('layers: ' + b)
if bad:
    sys.exit(1)
print(f'layers: {len(seen)} library files, {len(headers)} headers in {max(layer.values())} layers, no cycle,'
      ' no include of the command line')
