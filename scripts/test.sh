#!/usr/bin/env bash
# The full test suite: unit, property, protocol, integration and SIPp end-to-end tests.
#
# SIPp (Debian package sip-tester) drives the end-to-end tests. This script installs it when it
# is missing and we are root; otherwise those tests skip with a printed reason, except under
# CI=true, where a missing SIPp fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v sipp >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing SIPp (sip-tester)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null
    else
        echo "SIPp is not installed and we cannot install it (not root): end-to-end tests will skip"
    fi
fi

cargo test --workspace --locked "$@"
