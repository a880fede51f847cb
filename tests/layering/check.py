#!/usr/bin/env python3
"""The layering check: no folder of core/ uses a folder above it.

    check.py CORE_DIR [OBJ_DIR]

Reads CORE_DIR/LAYERS (the one place that states the architecture) and fails, naming each
offending line, when a file
  - includes a header of a layer its own does not use ("folder/name.h" across layers, a
    bare "name.h" only for its own folder or the public rtserver.h), or
  - includes a third-party header reserved to other layers (LAYERS' library lines), or
  - (with OBJ_DIR, the build's obj/ tree) its object needs a symbol that only a layer its
    own does not use defines.
Exit status 0: clean; 1: violations (listed); 2: usage or a broken LAYERS file.
"""
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def read_layers(path):
    uses, libraries = {}, {}
    for n, line in enumerate(open(path), 1):
        words = line.split('#', 1)[0].split()
        if not words:
            continue
        if words[0] == 'layer' and len(words) >= 2:
            uses[words[1]] = words[2:]
        elif words[0] == 'library' and len(words) >= 3:
            libraries[words[1]] = set(words[2:])
        else:
            sys.exit('LAYERS:%d: cannot read "%s"' % (n, line.strip()))
    for layer, below in uses.items():
        for b in below:
            if b not in uses:
                sys.exit('LAYERS: %s uses %s, which is not a layer' % (layer, b))
    return uses, libraries


def closure(uses):
    """Each layer and every layer it may reach, itself included; fails on a cycle."""
    reach = {}

    def visit(layer, path):
        if layer in path:
            sys.exit('LAYERS: cycle %s' % ' -> '.join(path + [layer]))
        if layer not in reach:
            r = {layer}
            for b in uses[layer]:
                r |= visit(b, path + [layer])
            reach[layer] = r
        return reach[layer]

    for layer in uses:
        visit(layer, [])
    return reach


def check_includes(core, uses, reach, libraries):
    bad = []
    for layer in sorted(uses):
        folder = os.path.join(core, layer)
        if not os.path.isdir(folder):
            bad.append('%s/: a layer in LAYERS with no folder' % layer)
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(('.c', '.h')):
                continue
            path = os.path.join(folder, name)
            text = open(path, encoding='utf-8', errors='replace').read()
            for m in INCLUDE.finditer(text):
                kind, header = m.group(1), m.group(2)
                line = text.count('\n', 0, m.start()) + 1
                where = '%s/%s:%d' % (layer, name, line)
                if header in libraries:
                    if layer not in libraries[header]:
                        bad.append('%s: %s is for %s only' %
                                   (where, header, ', '.join(sorted(libraries[header]))))
                    continue
                if kind == '<':
                    continue
                if header == 'rtserver.h':
                    continue
                if '/' in header:
                    target = header.split('/', 1)[0]
                    if target not in uses:
                        bad.append('%s: "%s" is in no layer' % (where, header))
                    elif target not in reach[layer]:
                        bad.append('%s: %s includes "%s", a layer it does not use' %
                                   (where, layer, header))
                elif not os.path.exists(os.path.join(folder, header)):
                    bad.append('%s: "%s" is not in %s/ (name its folder)' % (where, header, layer))
    return bad


def nm(path, *flags):
    out = subprocess.run(['nm', *flags, path], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def check_symbols(objdir, uses, reach):
    defined, needed = {}, {}
    for layer in uses:
        folder = os.path.join(objdir, layer)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith('.o'):
                obj = os.path.join(folder, name)
                for sym in nm(obj, '--defined-only', '--extern-only'):
                    defined.setdefault(sym, layer)
                needed['%s/%s' % (layer, name)] = (layer, nm(obj, '--undefined-only'))
    bad = []
    for obj, (layer, syms) in sorted(needed.items()):
        for sym in syms:
            owner = defined.get(sym)
            if owner and owner not in reach[layer]:
                bad.append('%s needs %s from %s/, a layer %s does not use' %
                           (obj, sym, owner, layer))
    return bad


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    core = sys.argv[1]
    uses, libraries = read_layers(os.path.join(core, 'LAYERS'))
    reach = closure(uses)
    bad = check_includes(core, uses, reach, libraries)
    for entry in sorted(os.listdir(core)):
        if os.path.isdir(os.path.join(core, entry)) and entry not in uses:
            bad.append('%s/: a folder that LAYERS does not name' % entry)
    if len(sys.argv) == 3:
        bad += check_symbols(sys.argv[2], uses, reach)
    for b in bad:
        print('layering: ' + b)
    if bad:
        print('layering: %d violation(s) of core/LAYERS' % len(bad))
        return 1
    print('layering: %d layers, every include%s points down' %
          (len(uses), ' and symbol' if len(sys.argv) == 3 else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
