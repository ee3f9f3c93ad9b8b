#!/usr/bin/env bash
# Runs the e2e tests (e2e/) on a throwaway k3d (k3s in docker) cluster.
# Needs docker with a running daemon, k3d, kubectl and cargo (helm for ZDR_E2E_MODE=chart).
#
#   hack/e2e-k3d.sh                       # local controller, cluster deleted afterwards
#   ZDR_E2E_MODE=chart hack/e2e-k3d.sh    # controller from the image, installed with the chart
#   ZDR_KEEP_CLUSTER=1 hack/e2e-k3d.sh    # keep the cluster for debugging
#
# Environment: ZDR_K3D_CLUSTER (default zdr-e2e), ZDR_K3S_IMAGE (e.g. rancher/k3s:v1.33.1-k3s1),
# ZDR_KEEP_CLUSTER, and those of hack/e2e-common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/e2e-common.sh
source hack/e2e-common.sh

CLUSTER="${ZDR_K3D_CLUSTER:-zdr-e2e}"
K3S_IMAGE="${ZDR_K3S_IMAGE:-}"
KEEP="${ZDR_KEEP_CLUSTER:-0}"

need k3d
need kubectl

KUBECONFIG="${PWD}/target/e2e-k3d-${CLUSTER}.kubeconfig"
export KUBECONFIG
mkdir -p target

CREATED=0
cleanup() {
  if [[ "$CREATED" == 1 && "$KEEP" != 1 ]]; then
    k3d cluster delete "$CLUSTER" || true
    rm -f "$KUBECONFIG"
  elif [[ "$KEEP" == 1 ]]; then
    echo "== e2e: kept cluster $CLUSTER; KUBECONFIG=$KUBECONFIG"
  fi
}
trap cleanup EXIT

if k3d cluster get "$CLUSTER" >/dev/null 2>&1; then
  echo "== e2e: re-using k3d cluster $CLUSTER"
else
  echo "== e2e: creating k3d cluster $CLUSTER"
  args=(cluster create "$CLUSTER" --wait --timeout 180s
    --kubeconfig-update-default=false --kubeconfig-switch-context=false)
  if [[ -n "$K3S_IMAGE" ]]; then
    args+=(--image "$K3S_IMAGE")
  fi
  k3d "${args[@]}"
  CREATED=1
fi
k3d kubeconfig get "$CLUSTER" >"$KUBECONFIG"
kubectl version

load_image() {
  k3d image import "$1" --cluster "$CLUSTER"
}

run_e2e
