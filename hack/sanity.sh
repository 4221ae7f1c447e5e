#!/usr/bin/env bash
# Run `ansible-test sanity` for configmgr.nap.
#
# ansible-test only runs from a directory named ansible_collections/<ns>/<name>,
# so the files git sees (tracked + untracked-but-not-ignored) are staged into
# build/sanity/ansible_collections/configmgr/nap, with the dependency collections
# (from .cache/collections) linked beside it so imports and docs resolve.
#
# Usage: hack/sanity.sh <venv-bin-dir> [extra ansible-test args, e.g. -v]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="$(cd "${1:?venv bin dir}" && pwd)"
shift

STAGE_BASE="$ROOT/build/sanity/ansible_collections"
STAGE="$STAGE_BASE/configmgr/nap"
DEPS="$ROOT/.cache/collections/ansible_collections"

log() { printf '==> sanity: %s\n' "$*"; }

PY_VERSION="$("$VENV_BIN/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# --- 1. stage the collection ---------------------------------------------------
log "staging git-visible files into $STAGE"
rm -rf "$STAGE"
mkdir -p "$STAGE"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
    | (cd "$ROOT" && while IFS= read -r -d '' f; do
           # skip tracked files deleted in the work tree
           if [[ -e "$f" || -L "$f" ]]; then printf '%s\0' "$f"; fi
       done) \
    | tar -C "$ROOT" --null --no-recursion -T - -cf - \
    | tar -C "$STAGE" -xf -
# A git repo of its own: ansible-test lists content with `git ls-files` from the
# nearest .git upwards, which would otherwise be this checkout (where build/ is
# ignored). Nothing is committed; untracked files are listed too.
git -C "$STAGE" init -q

# --- 2. dependency collections beside it -------------------------------------
[[ -d "$DEPS" ]] || { echo "error: $DEPS missing, run 'make collections'" >&2; exit 1; }
for dir in "$DEPS"/*/*/; do
    dir="${dir%/}"
    ns="$(basename "$(dirname "$dir")")"
    name="$(basename "$dir")"
    [[ "$ns/$name" == configmgr/nap ]] && continue
    mkdir -p "$STAGE_BASE/$ns"
    ln -sfn "$dir" "$STAGE_BASE/$ns/$name"
done

# --- 3. offline get-pip stand-in -----------------------------------------------
# ansible-test bootstraps pip in each sanity venv with get-pip-<ver>.py from a
# host we cannot reach, unless ~/.ansible/test/cache/get_pip_<ver>.py exists.
PIP_VERSION="$("$VENV_BIN/python" - <<'PY'
import os, re, ansible_test
src = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
print(re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", src).group(1))
PY
)"
GET_PIP="$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
# A real get-pip (if someone placed one) is kept; our stand-in is refreshed.
if [[ ! -s "$GET_PIP" ]] || { grep -q 'Offline stand-in' "$GET_PIP" && ! cmp -s "$ROOT/hack/get_pip_standin.py" "$GET_PIP"; }; then
    log "installing get-pip stand-in as $GET_PIP"
    mkdir -p "$(dirname "$GET_PIP")"
    cp "$ROOT/hack/get_pip_standin.py" "$GET_PIP"
fi

# --- 4. run --------------------------------------------------------------------
# Skipped, because it cannot run on these machines:
#   pslint: PSScriptAnalyzer runs under pwsh (PowerShell), which is not
#           installable here (no Microsoft package feed, no Debian package;
#           npm's `pwsh` fetches the binary from GitHub, unreachable here).
# validate-modules asks pwsh for the argument spec of PowerShell modules (*.ps1)
# and aborts without it. So it runs in two parts:
#   a) ansible-test validate-modules on every plugin file except *.ps1
#      (their .py documentation sidecars included);
#   b) hack/validate_ps1_modules.py on the *.ps1 modules: the same validator,
#      in ansible-test's own validate-modules venv, with only the argument-spec
#      introspection disabled (docs vs. $spec is then not compared).
cd "$STAGE"
# venv first on PATH: `--python X.Y` resolves pythonX.Y to the venv interpreter.
export PATH="$VENV_BIN:$PATH"
unset ANSIBLE_COLLECTIONS_PATH  # ansible-test sets it from the staged layout
AT=(ansible-test sanity --python "$PY_VERSION" --color no)
# drop pip's noise about this machine's unused local index directories
quiet() { grep -v 'is ignored: it is neither a file nor a directory' || true; }

mapfile -t NON_PS1 < <(find plugins -type f ! -name '*.ps1' ! -path '*/__pycache__/*' 2>/dev/null | sort)
mapfile -t PS1 < <(find plugins/modules -type f -name '*.ps1' 2>/dev/null | sort)

status=0
log "${AT[*]} --skip-test pslint --skip-test validate-modules"
"${AT[@]}" --skip-test pslint --skip-test validate-modules "$@" 2>&1 | quiet || status=$?

if ((${#NON_PS1[@]})); then
    log "${AT[*]} --test validate-modules <${#NON_PS1[@]} plugin files, *.ps1 excluded>"
    "${AT[@]}" --test validate-modules "$@" "${NON_PS1[@]}" 2>&1 | quiet || status=$?
fi

if ((${#PS1[@]})); then
    log "validate-modules (no argument-spec check) on ${#PS1[@]} PowerShell module(s)"
    "${AT[@]}" --test validate-modules --prime-venvs >/dev/null 2>&1 || true
    # the venv ansible-test just used (it touches marker.txt on each use)
    marker="$(find "$HOME/.ansible/test/venv/sanity.validate-modules/$PY_VERSION" -mindepth 2 -maxdepth 2 \
        -name marker.txt -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)"
    [[ -n "$marker" ]] || { echo "error: no validate-modules venv found" >&2; exit 1; }
    vm_python="$(dirname "$marker")/bin/python"
    at_root="$("$VENV_BIN/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')"
    ansible_lib="$("$VENV_BIN/python" -c 'import ansible, os; print(os.path.dirname(ansible.__file__))')"
    version="$("$VENV_BIN/python" -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')"
    libdir="$(mktemp -d)"
    ln -s "$ansible_lib" "$libdir/ansible"
    PYTHONPATH="$libdir:$at_root/_util/controller/sanity/validate-modules" \
    ANSIBLE_COLLECTIONS_PATH="$ROOT/build/sanity" \
    ANSIBLE_CONFIG="$at_root/_data/ansible.cfg" \
    ANSIBLE_TEST_ANSIBLE_LIB_ROOT="$ansible_lib" \
        "$vm_python" "$ROOT/hack/validate_ps1_modules.py" "tests/sanity/ignore-$("$VENV_BIN/python" -c 'import ansible; print(".".join(ansible.__version__.split(".")[:2]))').txt" \
        --arg-spec --collection ansible_collections/configmgr/nap --collection-version "$version" "${PS1[@]}" \
        || status=$?
    rm -rf "$libdir"
fi

if ((status)); then
    log "FAILED (ansible-test results in $STAGE/tests/output)"
else
    log "OK"
fi
exit "$status"
