#!/usr/bin/env bash
# Installs what Ferry's tests need and runs the whole suite: formatting, lints, unit, property,
# crash and end-to-end tests. Safe to run repeatedly; used by .ci/run on a clean checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto mosquitto-clients)
# The container-app tests build their image from busybox-static (no registry can be pulled from).
[ -x /bin/busybox ] || need_apt+=(busybox-static)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (apt-get)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The package starts a system broker on 1883; tests start their own on free ports.
  $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || $SUDO service mosquitto stop >/dev/null 2>&1 || true
fi

# The AWS API emulator for the Kinesis / Firehose / S3 sink tests, in the project's own venv.
if [ ! -x .venv/bin/moto_server ]; then
  echo "== installing moto[server] into .venv (pip)"
  command -v python3 >/dev/null || { echo "python3 is needed for the AWS emulator" >&2; exit 1; }
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5.2,<6'
fi
export FERRYTEST_MOTO_SERVER="$PWD/.venv/bin/moto_server"

# The official Greengrass Stream Manager SDK for tests/greengrass.rs, in a venv of its own.
if ! .venv-gg/bin/python -c 'import stream_manager' >/dev/null 2>&1; then
  echo "== installing stream-manager==1.1.2 into .venv-gg (pip)"
  python3 -m venv .venv-gg
  .venv-gg/bin/pip install --quiet --disable-pip-version-check stream-manager==1.1.2
fi

# The Docker engine runs on the machines CI uses: the app tests must not skip there.
if docker version >/dev/null 2>&1; then export FERRYTEST_REQUIRE_DOCKER=1; else
  echo "== warning: no Docker engine answers; the container-app tests will say they skipped"; fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
