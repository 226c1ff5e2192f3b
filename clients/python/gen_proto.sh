#!/bin/sh
# Regenerates clients/python/freshet/freshet_pb2.py from schema/freshet.proto with Debian's protoc
# (3.21, matching python3-protobuf). The generated file is checked in; tests/python/test_proto.py
# regenerates it into a temporary directory and fails if the two differ, so it cannot drift.
# Usage: clients/python/gen_proto.sh [OUT_DIR]   (default: clients/python/freshet)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/freshet}
mkdir -p "$out"
cd "$root/schema"
exec protoc -I. --python_out="$out" freshet.proto
