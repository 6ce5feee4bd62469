#!/usr/bin/env bash
# Fetch Trino's server tarball and executable CLI jar from Maven Central (into ~/.m2) and unpack the server
# into jvm/target/trino-server-<version>/ keeping only the plugins the Hive connector needs. Idempotent:
# a finished unpack (marked by .unpacked) is left alone. Trino >= 4xx needs Java 22+ at run time; this
# script needs only Maven. TRINO_VERSION overrides the version.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${TRINO_VERSION:-476}
M2=${MAVEN_REPO:-$HOME/.m2/repository}
SERVER_TGZ=$M2/io/trino/trino-server/$VERSION/trino-server-$VERSION.tar.gz
CLI_JAR=$M2/io/trino/trino-cli/$VERSION/trino-cli-$VERSION-executable.jar
TARGET=jvm/target/trino-server-$VERSION
KEEP_PLUGINS=(hive)

[ -f "$SERVER_TGZ" ] || mvn -q dependency:get -Dtransitive=false -Dartifact="io.trino:trino-server:$VERSION:tar.gz"
[ -f "$CLI_JAR" ] || mvn -q dependency:get -Dtransitive=false -Dartifact="io.trino:trino-cli:$VERSION:jar:executable"

if [ ! -f "$TARGET/.unpacked" ]; then
  rm -rf "$TARGET" "$TARGET.partial"
  mkdir -p "$TARGET.partial"
  # The tarball hard-links shared jars between plugins: extract it whole, then drop what is not kept.
  tar -xzf "$SERVER_TGZ" -C "$TARGET.partial" --strip-components=1
  for plugin in "$TARGET.partial"/plugin/*; do
    name=$(basename "$plugin")
    keep=no
    for k in "${KEEP_PLUGINS[@]}"; do [ "$name" = "$k" ] && keep=yes; done
    [ $keep = yes ] || rm -rf "$plugin"
  done
  touch "$TARGET.partial/.unpacked"
  mv "$TARGET.partial" "$TARGET"
fi
echo "trino server: $TARGET"
echo "trino cli: $CLI_JAR"
