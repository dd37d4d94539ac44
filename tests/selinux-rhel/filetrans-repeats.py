#!/usr/bin/env python3
"""Removes the repeated filename type transitions and role transitions from a monolithic
policy.conf that checkpolicy 3.4 (Debian 12's) rejects.

Fedora's policy states some filename transitions more than once through
overlapping attributes (named_filetrans_domain and unconfined_domain_type
share members, so `type_transition named_filetrans_domain etc_t:file
system_conf_t "iptables.save"` repeats rules already there). Newer
checkpolicy ignores a repeat with the same result; 3.4 stops with
"duplicate filename transition". For each rule that repeats an earlier
(source, target, class, name) with the same result:
  - if every repeated source is a type declared at top level, the rule is
    rewritten per (target, class) with those sources excluded: the policy
    keeps exactly the same transitions;
  - otherwise (a repeated source is declared inside an optional block and
    cannot be named outside it) the rule is dropped, and so are its
    transitions for sources that did not repeat: listed in the report.
A repeat with a DIFFERENT result is left alone, so checkpolicy still
rejects a real conflict. Filename transitions only choose the type of a
newly created file; no allow rule changes.

    filetrans-repeats.py IN OUT REPORT
"""
import re
import sys

src, dst, report = sys.argv[1:4]
lines = open(src).read().split("\n")

members = {}  # attribute -> types
aliases = {}  # alias -> type
global_types = set()
in_require = False
for line in lines:
    s = line.strip()
    # `require { type a_t, b_t; }` lists types; it declares nothing.
    if s.startswith("require {"):
        in_require = True
    if in_require:
        in_require = not s.startswith("}")
        continue
    top = not line[:1].isspace()
    m = re.match(r"^attribute\s+(\w+)\s*;", s)
    if m:
        members.setdefault(m.group(1), set())
        continue
    m = re.match(r"^typealias\s+(\w+)\s+alias\s+(\{[^}]*\}|\w+)\s*;", s)
    if m:
        for a in m.group(2).strip("{} ").split():
            aliases[a] = m.group(1)
        continue
    m = re.match(r"^type\s+(\w+)(?:\s+alias\s+(\{[^}]*\}|\w+))?\s*(?:,\s*([^;]*))?;", s)
    if m:
        for a in (m.group(2) or "").strip("{} ").split():
            aliases[a] = m.group(1)
        if top:
            global_types.add(m.group(1))
        for a in (m.group(3) or "").split(","):
            if a.strip():
                members.setdefault(a.strip(), set()).add(m.group(1))
        continue
    m = re.match(r"^typeattribute\s+(\w+)\s+([^;]*);", s)
    if m:
        for a in m.group(2).split(","):
            members.setdefault(a.strip(), set()).add(aliases.get(m.group(1), m.group(1)))


def expand(spec):
    spec = spec.strip()
    items = spec[1:-1].split() if spec.startswith("{") else [spec]
    plus, minus = set(), set()
    for it in items:
        name = it.lstrip("-")
        if name.startswith(("*", "~")):
            raise SystemExit(f"filetrans-repeats: cannot expand {spec!r}")
        name = aliases.get(name, name)
        (minus if it.startswith("-") else plus).update(members.get(name, {name}))
    return plus - minus


rule = re.compile(
    r'^(\s*)type_transition\s+(\{[^}]*\}|\S+)\s+(\{[^}]*\}|\S+?)\s*:\s*(\{[^}]*\}|\w+)\s+(\w+)\s+"([^"]*)"\s*;\s*$'
)
seen = {}  # (source, target, class, name) -> result type
rewritten, dropped = 0, []
out = []
role_rule = re.compile(r"^(\s*)role_transition\s+(\w+)\s+(\{[^}]*\}|\w+)\s+(\w+)\s*;\s*$")
role_seen = {}  # (role, type) -> new role
for line in lines:
    m = role_rule.match(line)
    if m:
        # The same for role transitions: sysadm_r's to system_r for
        # init_script_file_type repeats the ones for each init script type.
        indent, role, t, newrole = m.groups()
        ts = expand(t)
        rep = {x for x in ts if role_seen.get((role, x)) == newrole}
        for x in ts - rep:
            role_seen.setdefault((role, x), newrole)
        if not rep:
            out.append(line)
            continue
        out.append(f"{indent}# repeats removed: {line.strip()}")
        if rep - global_types:
            dropped.append(f"{line.strip()}  # lost for: {' '.join(sorted(ts - rep)) or '(none)'}")
            out.append(f"{indent}dontaudit out_of_tree_stub_t self:process signull;")
        elif rep == ts:
            rewritten += 1
            out.append(f"{indent}dontaudit out_of_tree_stub_t self:process signull;")
        else:
            rewritten += 1
            items = t[1:-1].split() if t.startswith("{") else [t]
            minus = " ".join(f"-{x}" for x in sorted(rep))
            out.append(f"{indent}role_transition {role} {{ {' '.join(items)} {minus} }} {newrole};")
        continue
    m = rule.match(line)
    if not m:
        out.append(line)
        continue
    indent, s, t, c, otype, name = m.groups()
    ss, ts, cs = expand(s), expand(t), expand(c)
    repeats = {}
    for tt in sorted(ts):
        for cc in sorted(cs):
            repeats[(tt, cc)] = set()
            for st in sorted(ss):
                key = (st, tt, cc, name)
                if seen.get(key) == otype:
                    repeats[(tt, cc)].add(st)
                else:
                    seen.setdefault(key, otype)
    if not any(repeats.values()):
        out.append(line)
        continue
    out.append(f"{indent}# repeats removed: {line.strip()}")
    scoped = set().union(*repeats.values()) - global_types
    if scoped:
        lost = sorted(ss - set().union(*repeats.values()))
        dropped.append(f"{line.strip()}  # lost for: {' '.join(lost) or '(none)'}")
        # An empty optional block is a syntax error: a rule on the stub
        # type (out-of-tree-stubs.te), which no process runs in.
        out.append(f"{indent}dontaudit out_of_tree_stub_t self:process signull;")
        continue
    rewritten += 1
    items = s[1:-1].split() if s.startswith("{") else [s]
    emitted = False
    for (tt, cc), d in repeats.items():
        if d == ss:
            continue
        minus = " ".join(f"-{x}" for x in sorted(d))
        out.append(f'{indent}type_transition {{ {" ".join(items)} {minus} }} {tt}:{cc} {otype} "{name}";')
        emitted = True
    if not emitted:
        out.append(f"{indent}dontaudit out_of_tree_stub_t self:process signull;")

open(dst, "w").write("\n".join(out))
with open(report, "w") as f:
    f.write(f"rewritten without their repeats: {rewritten}\n")
    f.write(f"dropped (a repeat's source is scoped to an optional block): {len(dropped)}\n")
    f.writelines(d + "\n" for d in dropped)
print(f"{rewritten} rewritten, {len(dropped)} dropped")
