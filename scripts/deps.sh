#!/usr/bin/env bash
# Installs Freshet's build and test dependencies from Debian 12 packages. Idempotent and quick when
# everything is already installed (no apt-get update unless something is missing).
set -euo pipefail
PKGS=(build-essential cmake pkg-config liblmdb-dev lmdb-utils libevent-dev libmsgpack-dev
      nanopb libnanopb-dev protobuf-compiler libcriterion-dev libjansson-dev libssl-dev openssl
      python3-protobuf python3-pandas python3-msgpack python3-numpy python3-xgboost
      python3-sklearn libxgboost-dev redis-server libhiredis-dev clang libclang-rt-14-dev
      nats-server libnats-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
