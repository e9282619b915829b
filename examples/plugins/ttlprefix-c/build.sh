#!/bin/sh
# Builds ttlprefix.wasm (or the file named by $1) from src/ttlprefix.c with
# clang and wasm-ld, no libc (Debian: apt-get install clang lld). The build
# is reproducible with the same clang: the test rebuilds the module and
# compares it with the committed one. (The source is in src/ because the go
# command refuses a .c file beside Go files that do not use cgo.)
set -eu
cd "$(dirname "$0")"
out="${1:-ttlprefix.wasm}"
obj="$(mktemp)"
trap 'rm -f "$obj"' EXIT
clang --target=wasm32 -nostdlib -O2 -Wall -Wextra -Werror -c -o "$obj" src/ttlprefix.c
wasm-ld --no-entry --strip-all -o "$out" "$obj"
