#!/usr/bin/env bash
# Prints the compiler and linker options an nginx tree's own binary was
# configured with (--with-cc-opt, --with-ld-opt), one per line:
#   CC_OPT=<options>
#   LD_OPT=<options>
# from the given configure arguments, or else the tree's conf_flags (Debian),
# so that the CMake build compiles and links the module as nginx's own
# dynamic-module build would.
#   nginx-flags.sh SRC_DIR [configure args...]
set -euo pipefail

src=$1
shift

args=("$@")
if [ ${#args[@]} -eq 0 ] && [ -f "$src/conf_flags" ]; then
    # shellcheck disable=SC1091
    source "$src/conf_flags"
    args=("${NGX_CONF_FLAGS[@]}")
fi

cc_opt="" ld_opt=""
for arg in "${args[@]}"; do
    case $arg in
    --with-cc-opt=*) cc_opt=${arg#--with-cc-opt=} ;;
    --with-ld-opt=*) ld_opt=${arg#--with-ld-opt=} ;;
    esac
done
printf 'CC_OPT=%s\nLD_OPT=%s\n' "$cc_opt" "$ld_opt"
