#!/bin/sh
# Every state transition a header's table lists is named by a unit test.
#
# A header of src/ that declares "enum NAME_state {" describes the
# machine NAME (upper case) in its first comment; the rows of its table
# there are indented two or more spaces after the " *":
#
#   FROM -> TO          what makes it (the text after two spaces)
#   A, B,               a list of states may run over lines and then
#   C -> X | Y          name every pair: A, B and C to X and to Y
#   FROM -> TO (graph)  a variant: the same pair for another cause,
#                       which needs a test of its own
#
# A state is a member of the enum without its prefix, or "any".  A unit
# test (tests/unit/*.c) names the transitions it drives in comments,
# one or more lines "transition: MACHINE FROM -> TO [(variant)]" with
# the same lists, inside the test (START_TEST ... END_TEST) or just
# above it; the test must be added to a test case.  Exit 1, naming
# FILE:LINE, for a listed transition no test names, a tag that names a
# transition no table lists, a state no enum has, or a tag outside a
# registered test.  TRANSITIONS_TREE checks another tree (the script's
# own test uses it).
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "${TRANSITIONS_TREE:-$top}"
exec "${PYTHON3:-python3}" - <<'PY'
import glob
import re
import sys

STATE = re.compile(r'[A-Z][A-Z0-9_]*|any')
bad = []


def lex(text):
    """The tokens of a row's head and where its text starts, or None."""
    toks = []
    i = 0
    n = len(text)
    while i < n:
        j = i
        while j < n and text[j] == ' ':
            j += 1
        gap = j - i
        if j >= n:
            break
        # Two spaces start the text, but for the padding of the first
        # column before the arrow.
        if (toks and toks[-1][0] != 'A' and gap >= 2 and
                not (text.startswith('->', j) and toks[-1][0] == 'S' and
                     all(t[0] != 'A' for t in toks))):
            break
        m = STATE.match(text, j)
        if text.startswith('->', j):
            toks.append(('A', '->'))
            i = j + 2
        elif text[j] in ',|':
            toks.append(('P', text[j]))
            i = j + 1
        elif (text[j] == '(' and toks and toks[-1][0] == 'S' and
              gap == 1 and re.match(r'\(([a-z][a-z0-9-]*)\)', text[j:])):
            v = re.match(r'\(([a-z][a-z0-9-]*)\)', text[j:])
            toks.append(('V', v.group(1)))
            i = j + v.end()
        elif m and (j + len(m.group(0)) == n or
                    not re.match(r'[A-Za-z0-9_]', text[j + len(m.group(0))])):
            if toks and toks[-1][0] == 'S':
                break
            toks.append(('S', m.group(0)))
            i = j + len(m.group(0))
        else:
            break
    return toks


def parse(toks):
    """(from list, to list or None, variant, trailing separator)."""
    froms, tos, variant = [], None, None
    cur = froms
    want_state = True
    for kind, val in toks:
        if kind == 'S':
            if not want_state:
                return None
            cur.append(val)
            want_state = False
        elif kind == 'P':
            if want_state:
                return None
            want_state = True
        elif kind == 'A':
            if tos is not None or (not want_state and cur is not froms):
                return None
            tos = []
            cur = tos
            want_state = True
        elif kind == 'V':
            if tos is None or want_state:
                return None
            variant = val
    if tos is not None and (want_state or not tos):
        return None
    return froms, tos, variant, want_state and bool(froms) and tos is None


def machines():
    """{MACHINE: (states, {(from, to, variant): 'file:line'})}."""
    found = {}
    for path in sorted(glob.glob('src/*/*.h')):
        with open(path, encoding='utf-8') as f:
            lines = f.read().split('\n')
        text = '\n'.join(lines)
        m = re.search(r'enum ([a-z_0-9]+)_state \{([^}]*)\}', text)
        if m is None:
            continue
        name = m.group(1).upper()
        states = set()
        for member in re.findall(r'\b' + name + r'_([A-Z0-9_]+)',
                                 m.group(2)):
            if member != 'STATE_MAX':
                states.add(member)
        rows = {}
        pending = []
        for no, line in enumerate(lines, 1):
            if '*/' in line:
                break
            r = re.match(r' \*(  +)(\S.*)$', line)
            row = parse(lex(r.group(2))) if r else None
            if row is None or (not row[0] and row[1] is None):
                pending = []
                continue
            froms, tos, variant, _ = row
            if tos is None:
                pending += froms
                continue
            froms = pending + froms
            pending = []
            where = '%s:%d' % (path, no)
            if not froms:
                bad.append('%s: a row with no state before ->' % where)
                continue
            for s in froms + tos:
                if s != 'any' and s not in states:
                    bad.append('%s: %s is no state of enum %s_state' %
                               (where, s, name.lower()))
            for a in froms:
                for b in tos:
                    rows.setdefault((a, b, variant), where)
        if rows:
            found[name] = (states, rows)
    return found


def tests(known):
    """{(machine, from, to, variant)} the unit tests name."""
    named = set()
    tag = re.compile(r'transition:\s*([A-Z][A-Z0-9_]*)\s+(.*?)\s*'
                     r'(?:\*/)?\s*$')
    for path in sorted(glob.glob('tests/unit/*.c')):
        with open(path, encoding='utf-8') as f:
            lines = f.read().split('\n')
        text = '\n'.join(lines)
        added = set(re.findall(
            r'tcase_add_(?:loop_)?test\(\s*\w+,\s*(\w+)', text))
        open_test = None
        waiting = []        # tags above the next START_TEST
        for no, line in enumerate(lines, 1):
            where = '%s:%d' % (path, no)
            st = re.match(r'START_TEST\((\w+)\)', line)
            if st:
                open_test = st.group(1)
                for w in waiting:
                    if open_test not in added:
                        bad.append('%s: the tag\'s test %s is in no test '
                                   'case' % (w, open_test))
                waiting = []
                continue
            if line.startswith('END_TEST'):
                open_test = None
                continue
            m = tag.search(line)
            if m is None:
                continue
            name = m.group(1)
            row = parse(lex(m.group(2)))
            if row is None or row[1] is None or not row[0]:
                bad.append('%s: cannot read the tag "%s"' %
                           (where, m.group(2)))
                continue
            if name not in known:
                bad.append('%s: no header has a table of %s' %
                           (where, name))
                continue
            states, rows = known[name]
            froms, tos, variant, _ = row
            for a in froms:
                for b in tos:
                    if (a, b, variant) not in rows:
                        bad.append('%s: %s %s -> %s%s is in no table' %
                                   (where, name, a, b, ' (%s)' % variant
                                    if variant else ''))
                    named.add((name, a, b, variant))
            if open_test is None:
                waiting.append(where)
            elif open_test not in added:
                bad.append('%s: the tag\'s test %s is in no test case' %
                           (where, open_test))
        for w in waiting:
            bad.append('%s: a tag above no test' % w)
    return named


known = machines()
if not known:
    bad.append('src: no header has a transition table')
named = tests(known)
total = 0
for name in sorted(known):
    rows = known[name][1]
    for (a, b, variant), where in sorted(rows.items(),
                                         key=lambda kv: kv[1]):
        total += 1
        if (name, a, b, variant) not in named:
            bad.append('%s: %s %s -> %s%s: no unit test names it' %
                       (where, name, a, b,
                        ' (%s)' % variant if variant else ''))
for line in bad:
    print(line)
if bad:
    sys.exit(1)
print('transitions: every one of the %d transitions in %d tables has a '
      'unit test (%s)' % (total, len(known), ', '.join(sorted(known))))
PY
