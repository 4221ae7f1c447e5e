# -*- coding: utf-8 -*-
# Copyright: configmgr.nap contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each kind of identifier may contain: the one validation layer for every name that reaches
a rendered artefact (nft scripts, PowerShell, netsh, Cisco configuration, Aerleon YAML, file paths).

Every string that comes from an inventory, a setting or a module option is hostile until it has
passed :func:`check` for its kind.  The patterns are full matches (``re.fullmatch``: ``$`` would let a
trailing newline through) and every kind refuses control, format and line-separator characters.
Each backend still escapes what it allows for its own syntax, and refuses what its syntax cannot
carry (see docs/security.md for the table of what is accepted where).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import unicodedata


class NapError(Exception):
    """An error in the user's input, with a message fit to show as it is."""


# Unicode categories never accepted in any identifier or text: control (Cc: NUL, CR, LF, TAB, NEL
# U+0085 ...), format (Cf: zero-width and bidi controls), surrogates, private use, unassigned, and
# the line and paragraph separators (Zl U+2028, Zp U+2029), which some parsers take as new lines.
_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")

# kind -> (pattern, longest length, what a user may write, an example)
KINDS = {
    "zone": (r"[A-Za-z][A-Za-z0-9_-]*", 32,
             "1-32 characters from A-Z a-z 0-9 _ -, starting with a letter", "clients"),
    "host": (r"[A-Za-z0-9_](?:[A-Za-z0-9_.:-]*[A-Za-z0-9_])?", 253,
             "an inventory host name of 1-253 characters from A-Z a-z 0-9 _ . : - (a DNS name or an IP address)",
             "nps01.corp.example"),
    "group": (r"[A-Za-z_][A-Za-z0-9_]*", 255,
              "an Ansible group name: A-Z a-z 0-9 _, not starting with a digit", "nap_shv_points"),
    "rule": (r"[A-Za-z0-9][A-Za-z0-9_.+-]*", 100,
             "1-100 characters from A-Z a-z 0-9 _ . + -, starting with a letter or digit", "NAP-RADIUS-UDP-IN"),
    "flow_id": (r"[A-Za-z0-9][A-Za-z0-9_.-]*", 64,
                "1-64 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit", "NAP-RADIUS"),
    "acl": (r"[A-Za-z][A-Za-z0-9_.-]*", 64,
            "1-64 characters from A-Z a-z 0-9 _ . -, starting with a letter (a number names a numbered ACL)",
            "CONFIGMGR-NAP"),
    "interface": (r"[A-Za-z][A-Za-z0-9_./:-]*", 64,
                  "1-64 characters from A-Z a-z 0-9 _ . / : -, starting with a letter", "GigabitEthernet0/1"),
    "windows_group": (r"[A-Za-z0-9][A-Za-z0-9 _.()-]*", 100,
                      "1-100 characters from A-Z a-z 0-9 space _ . ( ) -, starting with a letter or digit",
                      "configmgr.nap"),
    "name_prefix": (r"[A-Za-z0-9][A-Za-z0-9 _.()+-]*", 40,
                    "1-40 characters from A-Z a-z 0-9 space _ . ( ) + -, starting with a letter or digit",
                    "NAP-"),
    "table": (r"[A-Za-z][A-Za-z0-9_]*", 64,
              "1-64 characters from A-Z a-z 0-9 _, starting with a letter", "configmgr_nap"),
}
_COMPILED = dict((kind, re.compile(spec[0])) for kind, spec in KINDS.items())
# Names that YAML (the resource modules' parsed output, inventories) reads as booleans or null, not text.
YAML_WORDS = ("y", "n", "yes", "no", "true", "false", "on", "off", "null", "none", "~")
_TEXT_ONLY = ("acl", "interface", "zone", "table", "windows_group", "name_prefix")

# Free text (rule descriptions): any printable character except those above and '|', which Windows
# refuses in a rule's Description and which nft comments use as the field separator.
DESCRIPTION_MAX = 1024
DESCRIPTION_FORBIDDEN = "|"
# A rule's source (the citation of its flow) is also carried in the Windows description's
# "[flow ID; source TEXT]" tag, so it cannot hold the tag's own delimiters.
SOURCE_FORBIDDEN = "|[];"


def bad_character(text):
    """The first character of ``text`` that no identifier or text may hold (or None)."""
    if text.isascii() and text.isprintable():
        return None           # U+0020..U+007E: no character of a refused category (the common case, checked in C)
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return char
    return None


def _shown(char):
    return "U+%04X" % ord(char)


def check(kind, value, where):
    """Return ``value`` as text when it is a valid identifier of ``kind``; NapError naming ``where`` otherwise.

    ``where`` names the variable and the host (``"host nps01: nap_perimeter_zones"``), so the message
    says which value of which host is at fault.
    """
    pattern, longest, expected, example = KINDS[kind]
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int)):
        raise NapError("%s: %r is not a valid %s name; expected %s (e.g. %s)" % (where, value, _label(kind),
                                                                                 expected, example))
    text = str(value)
    char = bad_character(text)
    if char is not None:
        raise NapError("%s: %r contains the control character %s; expected %s (e.g. %s)"
                       % (where, text, _shown(char), expected, example))
    if kind in _TEXT_ONLY and text.lower() in YAML_WORDS:
        raise NapError("%s: %r reads as a YAML boolean or null, not a name; expected %s (e.g. %s)"
                       % (where, text, expected, example))
    if not text or len(text) > longest or not _COMPILED[kind].fullmatch(text):
        raise NapError("%s: %r is not a valid %s name; expected %s (e.g. %s)"
                       % (where, text, _label(kind), expected, example))
    return text


def is_valid(kind, value):
    try:
        check(kind, value, "")
    except NapError:
        return False
    return True


def check_text(value, where, longest=DESCRIPTION_MAX, forbidden=DESCRIPTION_FORBIDDEN):
    """Free text (a rule description): printable characters only, at most ``longest``, none of ``forbidden``."""
    text = "" if value is None else str(value)
    char = bad_character(text)
    if char is not None:
        raise NapError("%s: %r contains the control character %s; a description is one line of printable text"
                       % (where, text, _shown(char)))
    for char in forbidden:
        if char in text:
            raise NapError("%s: %r contains %r, which is not allowed here (none of %s: Windows Firewall refuses '|' "
                           "in a description, and the rendered rules use these as delimiters)"
                           % (where, text, char, " ".join(forbidden)))
    if len(text) > longest:
        raise NapError("%s: the description is %d characters long; at most %d" % (where, len(text), longest))
    return text


def ascii_digits(text):
    """True when ``text`` is one or more ASCII digits (``str.isdigit`` also takes '²' and other digits)."""
    return bool(text) and all("0" <= c <= "9" for c in text)


def _label(kind):
    return kind.replace("_", " ")


__all__ = ["KINDS", "check", "check_text", "is_valid", "bad_character", "ascii_digits"]
