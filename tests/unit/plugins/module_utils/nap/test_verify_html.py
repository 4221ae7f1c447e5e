# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify.html: self-contained, every value escaped, and what a person sees in a real browser.

The report comes from ``verify.report()`` over hand-built probe jobs and results (a broken flow, unprobed
and unconfirmed checks, a missing listener, hostile text from a probe answer).  The browser tests open it in
headless Chromium (Debian's ``chromium``, installed by ``make setup`` through hack/install-lab-packages.sh)
from file:// only, with a fresh profile and every background network feature off, and read what the page
shows: the DOM Chromium built (``--dump-dom``) and a screenshot (``--screenshot``).  They run in
``make unit``; without Chromium they are skipped, saying so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import pytest

from ansible_collections.configmgr.nap.plugins.module_utils.nap import verify, verify_html

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (make setup installs it: hack/install-lab-packages.sh)")
HOSTILE = '<script>alert("x")</script> & {{ lookup("pipe", "id") }}'
WHEN = "2026-01-01T00:00:00Z"


def check(flow, source, vantage, target, address, protocol, port, expected="open", check_kind="flow", **extra):
    entry = {"check": check_kind, "flow": flow, "purpose": "p", "source": source, "source_zone": None,
             "vantage": vantage, "vantage_kind": "source", "target": target, "address": address,
             "protocol": protocol, "port": port, "expected": expected, "probe": "tcp" if protocol == "tcp" else "udp",
             "lenient": False, "note": None}
    entry.update(extra)
    return entry


def result(state, detail="d", time_ms=1.0):
    return {"state": state, "detail": detail, "time_ms": time_ms}


def synthetic_report():
    """A verify run: ok checks first in the input, one broken flow, unprobed and unconfirmed checks."""
    cla = [
        (check("REMEDIATION", "198.18.2.0/24", "cla01", "wsus01", "198.18.1.50", "tcp", 443), result("open")),
        (check("IPSEC-IKE", "198.18.2.0/24", "cla01", "ipsec01", "198.18.1.45", "udp", 500, probe="ike"),
         result("open", "IKEv1 reply")),
        (check("IPSEC-HRA", "198.18.2.0/24", "cla01", "hra01", "198.18.1.30", "tcp", 80, expected="blocked",
               check_kind="unchosen"), result("filtered", "no answer to the SYN within 50 ms")),
        (check("IPSEC-HRA", "198.18.2.0/24", "cla01", "hra01", "198.18.1.30", "tcp", 443),
         result("filtered", "no answer to the SYN within 50 ms", 50.2)),
    ]
    cm = [
        (check("NAP-AD-WRITE", "cm01", "cm01", "dc01", "198.18.1.5", "tcp", 636), result("open")),
        (check("AD-KERBEROS", "cm01", "cm01", "dc01", "198.18.1.5", "udp", 88, lenient=True),
         result("open|filtered", "no answer")),
        (check("AD-DNS", "cm01", "cm01", "dc01", "198.18.1.5", "udp", 53, probe="dns"),
         result("open", HOSTILE)),
    ]
    jobs = {"jobs": [], "not_probed": [
        dict(check("IPSEC-IKE", "198.18.2.0/24", None, "ipsec01", None, "esp", None), verdict="not probed",
             observed=None, detail="IP protocol esp has no ports to probe"),
        dict(check("DHCP-RADIUS", "dhcp01", None, "nps01", "198.18.1.20", "udp", 1812), verdict="not probed",
             observed=None, detail="a RADIUS probe needs the vantage's shared secret (nap_radius_secret)"),
    ]}
    results = []
    for vantage, pairs in (("cla01", cla), ("cm01", cm)):
        checks = [pair[0] for pair in pairs]
        jobs["jobs"].append({"vantage": vantage, "checks": checks,
                             "targets": [{"host": c["address"], "port": c["port"]} for c in checks]})
        results.append({"item": {"vantage": vantage}, "results": [pair[1] for pair in pairs]})
    listeners = verify.listener_checks(
        [{"host": "dc01", "method": "listen_ports_facts", "expected": [
            {"protocol": "tcp", "port": 389, "service": "ldap", "role": "domain_controller"}]},
         {"host": "nps01", "method": "listen_ports_facts", "expected": [
             {"protocol": "udp", "port": 1812, "service": "radius", "role": "shv_point"}]}],
        {"dc01": {"tcp": [{"address": "198.18.1.5", "port": 389, "name": "samba"}], "udp": []},
         "nps01": {"tcp": [], "udp": []}}, WHEN)
    return verify.report(jobs, results, listeners, when=WHEN)


class Dom(HTMLParser):
    """The body's text in document order, and every element with its span in that text."""

    VOID = ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr")

    def __init__(self, text):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.parts = []
        self.size = 0
        self.elements = []          # [tag, attrs, start, end]
        self.stack = []
        self.head = 0
        self.feed(text)
        self.close()
        self.text = "".join(self.parts)

    def handle_starttag(self, tag, attrs):
        if tag in ("head", "style", "script", "title"):
            self.head += 1
        element = [tag, dict(attrs), self.size, None]
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        if tag in ("head", "style", "script", "title"):
            self.head -= 1
        while self.stack:
            element = self.stack.pop()
            element[3] = self.size
            if element[0] == tag:
                break

    def handle_data(self, data):
        if not self.head:
            data = " ".join(data.split())
            if data:
                self.parts.append(data + " ")
                self.size += len(data) + 1

    def find(self, **attrs):
        return [e for e in self.elements if all(e[1].get(k) == v for k, v in attrs.items())]

    def text_of(self, element):
        return self.text[element[2]:element[3]].strip()

    def with_class(self, name):
        return [e for e in self.elements if name in (e[1].get("class") or "").split()]


def test_report_gains_a_self_contained_html_page():
    out = synthetic_report()
    page = out["html"]
    assert page.startswith("<!DOCTYPE html>")
    low = page.lower()
    assert "<script" not in low and "http://" not in low and "https://" not in low and " src=" not in low
    assert "default-src 'none'" in page                    # the browser fetches nothing, runs nothing
    # the probe's answer is shown as text, never as markup, and never reaches a Jinja template as one
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#123;&#123; lookup" in page
    for marker in ("{{", "{%", "{#"):
        assert marker not in page
    dom = Dom(page)
    assert HOSTILE in dom.text


def test_hostile_names_are_escaped_everywhere():
    entry = check('dc"01<b>', "x' onmouseover='y", '<img src=x onerror=alert(1)>', "t&t", "198.18.1.5", "tcp", 1,
                  verdict="broken", observed="filtered", detail="</td></tr></table><h1>owned</h1>")
    summary = {"time": "<i>now</i>", "broken_flows": ["<svg onload=alert(1)>"], "verdicts": {}}
    page = verify_html.render(summary, [entry])
    dom = Dom(page)
    tags = set(e[0] for e in dom.elements)
    assert not tags & {"img", "svg", "b", "i", "script"}
    assert len([e for e in dom.elements if e[0] == "h1"]) == 1
    for text in ('dc"01<b>', "<img src=x onerror=alert(1)>", "</td></tr></table><h1>owned</h1>",
                 "<svg onload=alert(1)>", "<i>now</i>"):
        assert text in dom.text


def test_the_order_a_person_reads():
    out = synthetic_report()
    dom = Dom(out["html"])
    counts = out["summary"]["verdicts"]
    assert counts == {"ok": 6, "broken": 2, "unconfirmed": 1, "not probed": 2, "unprobeable": 0}
    (count_box,) = dom.find(id="counts")
    (status,) = dom.find(id="status")
    (attention,) = dom.find(id="attention")
    assert count_box[2] < status[2] < attention[2]
    assert dom.text_of(count_box) == "11 checks 2 broken 2 not probed 1 unconfirmed 6 ok"
    assert dom.text_of(status).startswith("2 broken checks: broken flow IPSEC-HRA")
    verdicts = [dom.text_of(e) for e in dom.with_class("v")]
    assert verdicts[:5] == ["broken", "broken", "not probed", "not probed", "unconfirmed"]
    first_ok = min(e[2] for e in dom.with_class("ok") if e[0] == "span")
    assert dom.text.index("IPSEC-HRA") < first_ok


def run_chromium(tmp_path, *args):
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--user-data-dir=%s" % profile, "--hide-scrollbars", "--window-size=1280,900"] + list(args)
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, env=env, check=False)
    assert proc.returncode == 0, "chromium failed (%d): %s" % (
        proc.returncode, proc.stderr.decode(errors="replace")[-2000:])
    return proc.stdout.decode("utf-8")


def write_page(tmp_path):
    out = synthetic_report()
    path = tmp_path / "verify.html"
    path.write_text(out["html"], encoding="utf-8")
    return out, "file://" + str(path)


@needs_chromium
def test_chromium_shows_the_counts_and_the_broken_flow_first(tmp_path):
    out, url = write_page(tmp_path)
    dom = Dom(run_chromium(tmp_path, "--dump-dom", url))
    assert not [e for e in dom.elements if e[0] == "script"]
    (count_box,) = dom.find(id="counts")
    for verdict, number in out["summary"]["verdicts"].items():
        if verdict == "unprobeable" and not number:
            assert not dom.find(id="count-unprobeable")        # shown only when some check cannot be probed
            continue
        (box,) = dom.find(id="count-" + verdict.replace(" ", ""))
        assert dom.text_of(box) == "%d %s" % (number, verdict)
    assert dom.text.startswith("configmgr.nap verify report Run at %s: 11 checks." % WHEN)
    (status,) = dom.find(id="status")
    assert count_box[3] <= status[2]
    assert "broken flow IPSEC-HRA" in dom.text_of(status)
    # the broken flow is named (status, then the first row of "Needs attention") before any ok check
    first_ok = min(e[2] for e in dom.with_class("ok") if e[0] == "span")
    assert dom.text.index("IPSEC-HRA") < status[3] < first_ok
    rows = [e for e in dom.elements if e[0] == "tr" and e[1].get("class")]
    assert dom.text_of(rows[0]).startswith("broken flow IPSEC-HRA 198.18.2.0/24 cla01 (source) hra01 (198.18.1.30) "
                                           "tcp/443")
    assert [r[1]["class"] for r in rows[:5]] == ["broken", "broken", "notprobed", "notprobed", "unconfirmed"]
    assert HOSTILE in dom.text                              # shown as text, not run


def png_rows(data, rows):
    """The first ``rows`` rows of an 8-bit RGB/RGBA PNG as lists of (r, g, b), and its size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color = header[:4]
    assert depth == 8 and color in (2, 6)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompressobj().decompress(idat, (1 + width * bpp) * rows)
    stride = width * bpp
    prev = bytearray(stride)
    out = []
    for y in range(rows):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            if kind == 1:
                cur[i] = (cur[i] + a) & 255
            elif kind == 2:
                cur[i] = (cur[i] + b) & 255
            elif kind == 3:
                cur[i] = (cur[i] + ((a + b) >> 1)) & 255
            elif kind == 4:
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append([tuple(cur[i:i + 3]) for i in range(0, stride, bpp)])
        prev = cur
    return out, (width, height)


@needs_chromium
def test_chromium_screenshot_shows_the_red_status_at_the_top(tmp_path):
    _out, url = write_page(tmp_path)
    shot = tmp_path / "verify.png"
    run_chromium(tmp_path, "--screenshot=%s" % shot, url)
    data = shot.read_bytes()
    assert len(data) > 10000, "the screenshot is (nearly) empty: %d bytes" % len(data)
    rows, size = png_rows(data, 320)
    assert size == (1280, 900)
    colors = set(px for row in rows for px in row)
    assert len(colors) > 20, "the top of the page is blank"

    def near(px, rgb):
        return all(abs(a - b) <= 8 for a, b in zip(px, rgb))

    red = [y for y, row in enumerate(rows) if sum(1 for px in row if near(px, (0xc6, 0x28, 0x28))) > 400]
    assert red, "no red status banner in the first 320 pixel rows"
    if os.environ.get("NAP_KEEP_SCREENSHOT"):
        shutil.copy(str(shot), os.environ["NAP_KEEP_SCREENSHOT"])
