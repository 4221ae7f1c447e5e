# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify report as one HTML page (pure function, no I/O).

``render(summary, entries)`` gives a self-contained page: inline CSS only, no script, nothing loaded from
anywhere (a Content-Security-Policy of ``default-src 'none'`` says so to the browser too), every value
escaped with ``html.escape``: host, zone and vantage names come from inventories and are hostile until
escaped.  What a person sees, top down:

1. the counts per verdict and a status line naming the broken flows;
2. *Needs attention*: the broken checks, then the not probed and the unconfirmed ones;
3. *Per flow*: every check, one block per flow (and kind of check), the flows with problems first and
   open, the flows that are all ok folded;
4. *Per vantage*: the counts per vantage point.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
from collections import OrderedDict

# Verdicts in the order a reader needs them: what is broken, what was not checked, what is uncertain.
ORDER = ("broken", "not probed", "unconfirmed", "ok", "unprobeable")
CLASSES = {"broken": "broken", "not probed": "notprobed", "unconfirmed": "unconfirmed", "ok": "ok",
           "unprobeable": "unprobeable"}
CHECK_TITLES = {"flow": "planned flow, expect open", "unchosen": "unchosen side of \"X or Y\", expect blocked",
                "unplanned": "unplanned port across a perimeter, expect blocked",
                "listener": "listener, expect listening"}
COLUMNS = ("verdict", "check", "flow", "source", "vantage", "target", "port", "probe", "expected", "observed",
           "ms", "detail")

STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.45 "DejaVu Sans", "Segoe UI", Arial, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
header { background: #fff; border-bottom: 1px solid #d5d9de; padding: 16px 24px 12px; }
main { padding: 8px 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 24px 0 8px; }
.run { color: #56606b; margin: 0 0 12px; }
.counts { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 12px; }
.count { min-width: 120px; padding: 8px 14px; border-radius: 6px; border: 1px solid #d5d9de; background: #fff; }
.count .n { display: block; font-size: 28px; font-weight: bold; line-height: 1.1; }
.count.broken { border-color: #c62828; background: #fdecea; color: #8e1b1b; }
.count.notprobed { border-color: #8a6d00; background: #fff7d6; color: #5c4900; }
.count.unconfirmed { border-color: #b26a00; background: #fff1e0; color: #6e4100; }
.count.ok { border-color: #2e7d32; background: #e8f5e9; color: #1b5e20; }
.count.total { background: #eef1f4; }
.status { font-size: 16px; font-weight: bold; padding: 10px 14px; border-radius: 6px; margin: 0; }
.status.bad { background: #c62828; color: #fff; }
.status.good { background: #2e7d32; color: #fff; }
.status.warn { background: #ffe08a; color: #3d3000; }
.status .also { font-weight: normal; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: 4px 0 12px; font-size: 13px; }
th, td { border: 1px solid #d5d9de; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #eef1f4; }
td.detail { max-width: 48em; overflow-wrap: anywhere; }
.v { font-weight: bold; white-space: nowrap; padding: 1px 6px; border-radius: 4px; }
.v.broken { background: #c62828; color: #fff; }
.v.notprobed { background: #ffe08a; color: #3d3000; }
.v.unconfirmed { background: #ffc77a; color: #3d2400; }
.v.ok { background: #c8e6c9; color: #1b5e20; }
.v.unprobeable { background: #eef1f4; color: #3d4650; }
tr.broken td { background: #fdecea; }
td.n { text-align: right; }
td.n.broken { background: #fdecea; color: #8e1b1b; font-weight: bold; }
td.n.notprobed { background: #fff7d6; }
td.n.unconfirmed { background: #fff1e0; }
details { background: #fff; border: 1px solid #d5d9de; border-radius: 6px; margin: 6px 0; padding: 4px 10px; }
summary { cursor: pointer; padding: 4px 0; }
summary .name { font-weight: bold; }
.none { color: #56606b; }
footer { color: #56606b; padding: 0 24px 24px; font-size: 12px; }
"""


def _e(value):
    """Escaped text of any value (None: empty); braces too, so that no value reads as a Jinja template
    should the page pass through one (the role writes it with ansible.builtin.copy)."""
    text = html.escape("" if value is None else str(value), quote=True)
    return text.replace("{", "&#123;").replace("}", "&#125;")


def _cls(verdict):
    return CLASSES.get(verdict, "other")


def _rank(verdict):
    return ORDER.index(verdict) if verdict in ORDER else len(ORDER)


def _counts(entries):
    counts = OrderedDict((v, 0) for v in ORDER)
    for entry in entries:
        counts[entry.get("verdict")] = counts.get(entry.get("verdict"), 0) + 1
    return counts


def _count_text(counts):
    return ", ".join("%d %s" % (n, v) for v, n in counts.items() if n) or "no checks"


def _port(entry):
    if entry.get("port") is not None:
        return "%s/%s" % (entry.get("protocol"), entry.get("port"))
    return entry.get("protocol")


def _target(entry):
    target = entry.get("target")
    if entry.get("address") and entry.get("address") != target:
        return "%s (%s)" % (target, entry["address"])
    return target


def _vantage(entry):
    if entry.get("vantage") and entry.get("vantage_kind"):
        return "%s (%s)" % (entry["vantage"], entry["vantage_kind"])
    return entry.get("vantage")


def _detail(entry):
    detail = entry.get("detail") or ""
    if entry.get("note"):
        detail = (detail + "; " if detail else "") + entry["note"]
    return detail


def _row(entry):
    ms = ("%.1f" % entry["time_ms"]) if isinstance(entry.get("time_ms"), (int, float)) else ""
    cells = (entry.get("check"), entry.get("flow"), entry.get("source"), _vantage(entry), _target(entry),
             _port(entry), entry.get("probe"), entry.get("expected"), entry.get("observed"), ms)
    verdict = entry.get("verdict")
    return '<tr class="%s"><td><span class="v %s">%s</span></td>%s<td class="detail">%s</td></tr>' % (
        _cls(verdict), _cls(verdict), _e(verdict), "".join("<td>%s</td>" % _e(c) for c in cells), _e(_detail(entry)))


def _table(entries):
    rows = sorted(entries, key=lambda e: _rank(e.get("verdict")))
    return "<table><thead><tr>%s</tr></thead><tbody>\n%s\n</tbody></table>" % (
        "".join("<th>%s</th>" % _e(c) for c in COLUMNS), "\n".join(_row(e) for e in rows))


def _status(summary, entries):
    broken = [e for e in entries if e.get("verdict") == "broken"]
    unprobed = [e for e in entries if e.get("verdict") == "not probed"]
    if not broken and unprobed:
        text = "%d check%s not probed (flows %s)" % (len(unprobed), "" if len(unprobed) == 1 else "s",
                                                     ", ".join(summary.get("unprobed_flows") or []))
        cls = "bad" if summary.get("unprobed_policy", "fail") == "fail" else "warn"
        return '<p id="status" class="status %s">%s</p>' % (cls, _e(text))
    if not broken:
        return '<p id="status" class="status good">Everything as planned: no broken check.</p>'
    flows = list(summary.get("broken_flows") or [])
    others = OrderedDict()
    for entry in broken:
        if entry.get("check") != "flow":
            others[entry.get("check")] = others.get(entry.get("check"), 0) + 1
    text = "%d broken check%s" % (len(broken), "" if len(broken) == 1 else "s")
    if flows:
        text += ": broken flow%s %s" % ("" if len(flows) == 1 else "s", ", ".join(flows))
    also = ", ".join("%d %s" % (n, c) for c, n in others.items())
    return '<p id="status" class="status bad">%s%s</p>' % (
        _e(text), (' <span class="also">(%s)</span>' % _e(("also " if flows else "") + also)) if also else "")


def _per_flow(entries):
    groups = OrderedDict()
    for entry in entries:
        groups.setdefault((entry.get("flow"), entry.get("check")), []).append(entry)
    order = sorted(groups.items(), key=lambda kv: min(_rank(e.get("verdict")) for e in kv[1]))
    out = []
    for (flow, check), members in order:
        counts = _counts(members)
        worst = min((_rank(e.get("verdict")) for e in members))
        worst = ORDER[worst] if worst < len(ORDER) else "other"
        out.append('<details class="%s"%s><summary><span class="v %s">%s</span> <span class="name">%s</span> '
                   '<span class="kind">%s</span>: %s</summary>\n%s\n</details>' % (
                       _cls(worst), " open" if worst != "ok" else "", _cls(worst), _e(worst), _e(flow),
                       _e(CHECK_TITLES.get(check, check)), _e(_count_text(counts)), _table(members)))
    return "\n".join(out)


def _per_vantage(entries):
    groups = OrderedDict()
    for entry in entries:
        if entry.get("vantage"):
            key = (entry["vantage"], entry.get("vantage_kind") or "-")
        else:
            key = ("none", "no vantage: not probed" if entry.get("verdict") == "not probed" else "-")
        groups.setdefault(key, []).append(entry)
    order = sorted(groups.items(), key=lambda kv: min(_rank(e.get("verdict")) for e in kv[1]))
    rows = []
    for (vantage, kind), members in order:
        counts = _counts(members)
        flows = []
        for entry in members:
            if entry.get("verdict") == "broken" and entry.get("flow") not in flows:
                flows.append(entry.get("flow"))
        rows.append("<tr><td>%s</td><td>%s</td><td>%d</td>%s<td>%s</td></tr>" % (
            _e(vantage), _e(kind), len(members), "".join(
                '<td class="n%s">%d</td>' % ((" " + _cls(v)) if n else "", n) for v, n in counts.items() if v in ORDER),
            _e(", ".join(str(f) for f in flows) or "-")))
    return ("<table><thead><tr><th>vantage</th><th>kind</th><th>checks</th>%s<th>broken flows</th></tr></thead>"
            "<tbody>\n%s\n</tbody></table>" % ("".join("<th>%s</th>" % _e(v) for v in ORDER), "\n".join(rows)))


def render(summary, entries):
    """The report page: counts and broken flows first, then the checks needing attention, per flow, per vantage."""
    entries = list(entries or [])
    counts = _counts(entries)
    attention = [e for e in entries if e.get("verdict") not in ("ok", "unprobeable")]
    title = "configmgr.nap verify: %s" % ("%d broken" % counts["broken"] if counts["broken"] else "ok")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title>" % _e(title),
        "<style>%s</style>" % STYLE,
        "</head>",
        "<body>",
        "<header>",
        "<h1>configmgr.nap verify report</h1>",
        '<p class="run">Run at %s: %d checks.</p>' % (_e(summary.get("time") or "-"), len(entries)),
        '<div id="counts" class="counts">',
        '<div class="count total" id="count-total"><span class="n">%d</span> checks</div>' % len(entries),
    ]
    for verdict, number in counts.items():
        if verdict == "unprobeable" and not number:
            continue
        parts.append('<div class="count %s" id="count-%s"><span class="n">%d</span> %s</div>' % (
            _cls(verdict), _cls(verdict), number, _e(verdict)))
    parts += ["</div>", _status(summary, entries), "</header>", "<main>",
              '<section id="attention">', "<h2>Needs attention (%d)</h2>" % len(attention),
              _table(attention) if attention else '<p class="none">Nothing: every check is ok.</p>',
              "</section>",
              '<section id="flows">', "<h2>Per flow</h2>", _per_flow(entries) or '<p class="none">No checks.</p>',
              "</section>",
              '<section id="vantages">', "<h2>Per vantage</h2>", _per_vantage(entries), "</section>",
              "</main>",
              "<footer>configmgr.nap verify; the same checks are in verify.json and verify.md.</footer>",
              "</body>", "</html>", ""]
    return "\n".join(parts)
