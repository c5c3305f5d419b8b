#!/bin/sh
# Builds the agent with the workspace's size-oriented `agent` profile
# (opt-level z, LTO, strip, panic=abort, codegen-units=1) and the default
# ring provider, building only this package so workspace feature unification
# cannot pull in aws-lc-rs, and prints the stripped binary size.
# With AGENT_ARGS set (e.g. "--server URL --server-root PEM --out-dir DIR
# --domain NAME --http-port N"), also runs one issuance under
# /usr/bin/time -v and prints the peak RSS.
set -eu
cd "$(dirname "$0")/../../.."
if [ -z "${AGENT_FEATURES:-}" ] && cargo tree -p fleetca-agent -e normal -i aws-lc-rs >/dev/null 2>&1; then
  echo "aws-lc-rs is in the agent's dependency tree" >&2
  exit 1
fi
# AGENT_FEATURES=aws-lc-rs measures the RSA-capable build instead.
cargo build --profile agent -p fleetca-agent ${AGENT_FEATURES:+--no-default-features --features "$AGENT_FEATURES"}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/agent/fleetca-agent
echo "stripped size: $(stat -c %s "$BIN") bytes"
if [ -n "${AGENT_ARGS:-}" ]; then
  # shellcheck disable=SC2086
  /usr/bin/time -v "$BIN" $AGENT_ARGS issue 2>&1 | grep -E "Maximum resident|Exit status"
fi
