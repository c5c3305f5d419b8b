#!/bin/sh
# Builds the agent with size-oriented settings (passed as env vars because
# Cargo only honours [profile] in the workspace root) in its own target dir,
# so workspace feature unification does not inflate it, and prints the
# stripped binary size. With PEBBLE_DIR/ARGS set, also runs one issuance
# under /usr/bin/time -v and prints the peak RSS.
set -eu
cd "$(dirname "$0")/../../.."
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=true \
  CARGO_PROFILE_RELEASE_STRIP=true CARGO_PROFILE_RELEASE_PANIC=abort \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
TARGET=${AGENT_TARGET_DIR:-/tmp/agent-release}
CARGO_TARGET_DIR=$TARGET cargo build --release -p fleetca-agent
BIN=$TARGET/release/fleetca-agent
echo "stripped size: $(stat -c %s "$BIN") bytes"
if [ -n "${AGENT_ARGS:-}" ]; then
  # shellcheck disable=SC2086
  /usr/bin/time -v "$BIN" $AGENT_ARGS issue 2>&1 | grep -E "Maximum resident|Exit status"
fi
