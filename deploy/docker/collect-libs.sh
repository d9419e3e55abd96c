#!/bin/sh
# collect-libs.sh BINARY... — copies the shared libraries the binaries need (per ldd) under
# /out/libs at their canonical paths (/usr/lib/..., never through the /lib symlink of merged-usr),
# so a runtime image gets them with one COPY and needs no -dev packages. The C library and the
# dynamic loader stay those of the runtime image (the same Debian release).
set -e
mkdir -p /out/libs
for bin in "$@"; do
  ldd "$bin" | awk '/=> \// { print $3 }' |
    grep -Ev '/(libc|libm|libpthread|libdl|librt)\.so|/ld-linux' |
    while read -r lib; do
      dir="$(readlink -f "$(dirname "$lib")")"
      mkdir -p "/out/libs$dir"
      cp -L "$lib" "/out/libs$dir/"
    done
done
