#!/usr/bin/env bash
# Build the collection tarball and install it like a user would, offline, together with tarballs of the
# dependency collections galaxy.yml declares (made from the copies in .cache/collections, since Galaxy is
# not reachable): ansible-galaxy's resolver must satisfy galaxy.yml from them. Then, with ONLY that
# installation as collections path:
#   - ansible-playbook configmgr.nap.plan runs and writes flows.json,
#   - every playbook of the collection passes --syntax-check (configmgr.nap.verify needs community.general),
#   - ansible-builder introspect finds the collection's requirements.txt and bindep.txt.
#
# Usage: hack/test-build.sh <venv-bin-dir>
# The temp dir is removed on success and kept (path printed) on failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="$(cd "${1:?venv bin dir}" && pwd)"
DEPS="$ROOT/.cache/collections"
[[ -d "$DEPS/ansible_collections" ]] || { echo "error: $DEPS missing, run 'make collections'" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/nap-build-check.XXXXXX")"
ok=0
cleanup() { if ((ok)); then rm -rf "$TMP"; else echo "==> build-check: FAILED, kept $TMP" >&2; fi; }
trap cleanup EXIT

log() { printf '==> build-check: %s\n' "$*"; }
fail() { echo "error: $*" >&2; exit 1; }

# Run from the temp dir so no ansible.cfg of the checkout is picked up, and see only the collections
# installed below: not the checkout, not .cache/collections, not ~/.ansible, not the venv's site-packages.
cd "$TMP"
export ANSIBLE_COLLECTIONS_PATH="$TMP/collections"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export PATH="$VENV_BIN:$PATH"

log "ansible-galaxy collection build"
"$VENV_BIN/ansible-galaxy" collection build "$ROOT" --output-path "$TMP/dist"
shopt -s nullglob
tarballs=("$TMP"/dist/configmgr-nap-*.tar.gz)
((${#tarballs[@]} == 1)) || fail "expected one tarball, got: ${tarballs[*]:-none}"
tarball="${tarballs[0]}"
log "built $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"

log "checking tarball contents"
tar -tzf "$tarball" > "$TMP/contents.txt"
# Local state, tooling and generated output must not ship; nap-report/ (reports) and __pycache__ at any depth.
bad="$(grep -E '^(\./)?(\.venv|\.cache|build|context|extensions|hack|bench|\.ci|tests/output|\.git|\.pytest_cache|\.hypothesis|ansible\.cfg|Makefile)(/|$)|(^|/)(nap-report|__pycache__)(/|$)' \
    "$TMP/contents.txt" || true)"
if [[ -n "$bad" ]]; then
    echo "error: tarball contains files that must not ship:" >&2
    head -20 <<<"$bad" >&2
    exit 1
fi
# bindep.txt and requirements.txt: ansible-builder reads them from the installed collection.
for required in MANIFEST.json FILES.json COPYING README.md meta/runtime.yml playbooks/plan.yml playbooks/verify.yml \
                requirements.txt bindep.txt; do
    grep -qxE "(\./)?$required" "$TMP/contents.txt" || fail "$required missing from tarball"
done
grep -q 'GNU GENERAL PUBLIC LICENSE' <(tar -xzOf "$tarball" COPYING) || fail "COPYING is not the GPL text"

log "dependency tarballs (galaxy.yml's dependencies, transitively) from $DEPS"
# A tarball per dependency, made from the collection as installed (its MANIFEST.json and FILES.json, and
# exactly the files FILES.json lists), which is what Galaxy would serve: ansible-galaxy checks every file
# against its FILES.json checksum on install. Fails if a dependency (or a version satisfying its range) is
# not in .cache/collections.
"$VENV_BIN/python" - "$ROOT/galaxy.yml" "$DEPS/ansible_collections" "$TMP/deps" <<'PY'
import json, os, sys, tarfile, time
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements

galaxy, installed, out = sys.argv[1:]
os.makedirs(out)
with open(galaxy) as handle:
    todo = list((yaml.safe_load(handle).get("dependencies") or {}).items())
done = set()
while todo:
    fqcn, wanted = todo.pop(0)
    if fqcn in done:
        continue
    done.add(fqcn)
    src = os.path.join(installed, *fqcn.split("."))
    try:
        with open(os.path.join(src, "MANIFEST.json")) as handle:
            info = json.load(handle)["collection_info"]
    except OSError:
        sys.exit("error: dependency %s is not in %s" % (fqcn, installed))
    if not meets_requirements(info["version"], wanted or "*"):
        sys.exit("error: %s %s in %s does not satisfy %s" % (fqcn, info["version"], installed, wanted))
    with open(os.path.join(src, "FILES.json")) as handle:
        files = json.load(handle)["files"]
    dest = os.path.join(out, "%s-%s-%s.tar.gz" % (info["namespace"], info["name"], info["version"]))
    start = time.time()
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(os.path.join(src, "MANIFEST.json"), "MANIFEST.json")
        tar.add(os.path.join(src, "FILES.json"), "FILES.json")
        for entry in files:
            if entry["name"] != ".":
                tar.add(os.path.join(src, entry["name"]), entry["name"], recursive=False)
    print("==> build-check:   %s (%s %s wanted; %d entries, %.1fs)" % (
        os.path.basename(dest), fqcn, wanted or "*", len(files), time.time() - start))
    todo.extend((info.get("dependencies") or {}).items())
PY

log "ansible-galaxy collection install --offline (resolving galaxy.yml's dependencies) -> $TMP/collections"
"$VENV_BIN/ansible-galaxy" collection install --offline "$tarball" "$TMP"/deps/*.tar.gz -p "$TMP/collections"
"$VENV_BIN/ansible-galaxy" collection list -p "$TMP/collections" 2>/dev/null | grep -E '^[a-z0-9_]+\.[a-z0-9_]+ ' || true

log "ansible-playbook configmgr.nap.plan (installed copy)"
inventory="$TMP/collections/ansible_collections/configmgr/nap/examples/inventory.yml"
"$VENV_BIN/ansible-playbook" configmgr.nap.plan -i "$inventory" -e nap_report_dir="$TMP/out"
[[ -s "$TMP/out/flows.json" ]] || fail "$TMP/out/flows.json was not written"
log "OK: $TMP/out/flows.json written by the installed collection"

log "ansible-playbook --syntax-check of every playbook (installed copy and its dependencies only)"
for playbook in "$TMP"/collections/ansible_collections/configmgr/nap/playbooks/*.yml; do
    name="configmgr.nap.$(basename "$playbook" .yml)"
    "$VENV_BIN/ansible-playbook" "$name" --syntax-check -i "$inventory" > "$TMP/syntax.log" 2>&1 \
        || { cat "$TMP/syntax.log" >&2; fail "$name does not pass --syntax-check"; }
    echo "    $name: syntax OK"
done

log "ansible-builder introspect $TMP/collections"
"$VENV_BIN/ansible-builder" introspect "$TMP/collections" > "$TMP/introspect.txt"
cat "$TMP/introspect.txt"
# Every package line of requirements.txt and bindep.txt must be in what ansible-builder collected for us.
"$VENV_BIN/python" - "$ROOT" "$TMP/introspect.txt" <<'PY'
import os, sys
import yaml
root, introspect = sys.argv[1:]
with open(introspect) as handle:
    found = yaml.safe_load(handle)
missing = []
for key, name in (("python", "requirements.txt"), ("system", "bindep.txt")):
    ours = set(e.rsplit("#", 1)[0].strip() for e in found.get(key) or [] if e.endswith("# from collection configmgr.nap"))
    with open(os.path.join(root, name)) as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line and line not in ours:
                missing.append("%s: %s" % (name, line))
if missing:
    sys.exit("error: ansible-builder introspect did not report:\n  " + "\n  ".join(missing))
print("==> build-check: OK: ansible-builder introspect lists every line of requirements.txt and bindep.txt")
PY

# requirements-dev.txt pins the runtime packages for the venv without `-r requirements.txt` (see there):
# the pinned versions must satisfy requirements.txt's ranges (extras are not checked: the venv has no Kerberos).
log "the venv's packages satisfy requirements.txt"
"$VENV_BIN/python" - "$ROOT/requirements.txt" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
bad = []
with open(sys.argv[1]) as handle:
    for line in handle:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        try:
            have = version(req.name)
        except PackageNotFoundError:
            bad.append("%s: not installed" % req)
            continue
        if not req.specifier.contains(have, prereleases=True):
            bad.append("%s: %s installed" % (req, have))
if bad:
    sys.exit("error: the venv does not satisfy requirements.txt:\n  " + "\n  ".join(bad))
PY
log "OK"
ok=1
