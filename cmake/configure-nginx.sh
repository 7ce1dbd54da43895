#!/usr/bin/env bash
# Copies an nginx source tree (Debian's nginx-dev tree or a full one) into the
# build folder and runs nginx's configure there, so the generated headers and
# the module's *_modules.c never land in the source tree.
#   configure-nginx.sh SRC_DIR OUT_DIR MODULE_DIR [configure args...]
# Without configure args, a tree's conf_flags (Debian) is used, else
# --with-compat.
set -euo pipefail

src=$1 out=$2 module=$3
shift 3

rm -rf "$out"
mkdir -p "$out"
cp -r "$src"/. "$out"/
cd "$out"

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    if [ -f conf_flags ]; then
        # shellcheck disable=SC1091
        source ./conf_flags
        args=("${NGX_CONF_FLAGS[@]}")
    else
        args=(--with-compat)
    fi
fi

if ! ./configure "${args[@]}" --add-dynamic-module="$module" >configure.log 2>&1; then
    cat configure.log >&2
    exit 1
fi
