#!/usr/bin/env bash
# Runs the e2e tests (e2e/) on a throwaway kind cluster.
# Needs docker with a running daemon, kind, kubectl and cargo (helm for ZDR_E2E_MODE=chart).
#
#   hack/e2e-kind.sh                      # local controller, cluster deleted afterwards
#   ZDR_E2E_MODE=chart hack/e2e-kind.sh   # controller from the image, installed with the chart
#   ZDR_KEEP_CLUSTER=1 hack/e2e-kind.sh   # keep the cluster (and its kubeconfig) for debugging
#
# Environment: ZDR_KIND_CLUSTER (default zdr-e2e), ZDR_KIND_NODE_IMAGE (e.g. kindest/node:v1.33.1),
# ZDR_KEEP_CLUSTER, and those of hack/e2e-common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/e2e-common.sh
source hack/e2e-common.sh

CLUSTER="${ZDR_KIND_CLUSTER:-zdr-e2e}"
NODE_IMAGE="${ZDR_KIND_NODE_IMAGE:-}"
KEEP="${ZDR_KEEP_CLUSTER:-0}"

need kind
need kubectl

KUBECONFIG="${PWD}/target/e2e-kind-${CLUSTER}.kubeconfig"
export KUBECONFIG
mkdir -p target

CREATED=0
cleanup() {
  if [[ "$CREATED" == 1 && "$KEEP" != 1 ]]; then
    kind delete cluster --name "$CLUSTER" || true
    rm -f "$KUBECONFIG"
  elif [[ "$KEEP" == 1 ]]; then
    echo "== e2e: kept cluster $CLUSTER; KUBECONFIG=$KUBECONFIG"
  fi
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "== e2e: re-using kind cluster $CLUSTER"
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  echo "== e2e: creating kind cluster $CLUSTER"
  args=(create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s)
  if [[ -n "$NODE_IMAGE" ]]; then
    args+=(--image "$NODE_IMAGE")
  fi
  kind "${args[@]}"
  CREATED=1
fi
kubectl version

load_image() {
  kind load docker-image "$1" --name "$CLUSTER"
}

run_e2e
