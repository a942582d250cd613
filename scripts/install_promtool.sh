#!/usr/bin/env bash
# Installs promtool (Prometheus' rule/config checker) for tests/unit/test_prometheus_rules.py,
# called by `make test`. Source: Debian's `prometheus` package (promtool in /usr/bin), the only
# registry that ships it here; nothing is downloaded from elsewhere. Without root or apt-get it
# says why and exits 0: the test then skips with that reason.
# Note: Debian builds Prometheus without kubernetes_sd_configs, so `promtool check config`
# rejects prometheus.yml's Kubernetes job; the test checks the config without that job.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_promtool: promtool missing and apt-get unusable here (not root or no apt);" \
         "the promtool tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# The package's postinst would start a Prometheus server: no service start in a build box.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
if ! apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; then
    # A build box without the Debian mirrors (or a broken apt) is not a failed build: the
    # promtool tests skip and say why.
    if ! { apt-get update -q >/dev/null 2>&1 &&
           apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; }; then
        echo "install_promtool: apt-get could not install prometheus; the promtool tests" \
             "will skip" >&2
        exit 0
    fi
fi
promtool --version 2>&1 | head -1
