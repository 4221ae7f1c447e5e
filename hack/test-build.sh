#!/usr/bin/env bash
# Build the collection tarball, install it like a user would and run its
# plan playbook from the installed copy (not the checkout).
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

# Run from the temp dir so no ansible.cfg or adjacent files of the checkout
# are picked up; only the installed tarball + dependency collections are seen.
cd "$TMP"
export ANSIBLE_COLLECTIONS_PATH="$TMP/collections:$DEPS"
export PATH="$VENV_BIN:$PATH"

log "ansible-galaxy collection build"
"$VENV_BIN/ansible-galaxy" collection build "$ROOT" --output-path "$TMP/dist"
shopt -s nullglob
tarballs=("$TMP"/dist/configmgr-nap-*.tar.gz)
((${#tarballs[@]} == 1)) || { echo "error: expected one tarball, got: ${tarballs[*]:-none}" >&2; exit 1; }
tarball="${tarballs[0]}"
log "built $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"

log "checking tarball contents"
tar -tzf "$tarball" > "$TMP/contents.txt"
bad="$(grep -E '^(\./)?(\.venv|\.cache|build|extensions|nap-report|tests/output|\.git|\.pytest_cache|\.hypothesis)(/|$)' "$TMP/contents.txt" || true)"
if [[ -n "$bad" ]]; then
    echo "error: tarball contains files that must not ship:" >&2
    head -20 <<<"$bad" >&2
    exit 1
fi
for required in MANIFEST.json FILES.json meta/runtime.yml playbooks/plan.yml; do
    grep -qxE "(\./)?$required" "$TMP/contents.txt" || { echo "error: $required missing from tarball" >&2; exit 1; }
done

log "ansible-galaxy collection install --offline --no-deps -> $TMP/collections"
"$VENV_BIN/ansible-galaxy" collection install --offline --no-deps "$tarball" -p "$TMP/collections"

log "ansible-playbook configmgr.nap.plan (installed copy)"
"$VENV_BIN/ansible-playbook" configmgr.nap.plan -i "$ROOT/examples/inventory.yml" -e nap_report_dir="$TMP/out"

[[ -s "$TMP/out/flows.json" ]] || { echo "error: $TMP/out/flows.json was not written" >&2; exit 1; }
log "OK: $TMP/out/flows.json written by the installed collection"
ok=1
