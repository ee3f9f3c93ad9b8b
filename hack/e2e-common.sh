# shellcheck shell=bash
# Shared by hack/e2e-kind.sh and hack/e2e-k3d.sh (sourced, not run): builds the image, installs
# the controller (chart mode) and runs `cargo test --test e2e` against $KUBECONFIG.
#
# The caller defines: load_image IMAGE (puts a locally built image on the cluster's nodes).
#
# Environment:
#   ZDR_E2E_MODE   local (default): each test starts target/debug/zdr-controller itself;
#                  chart: the image runs in the cluster, installed with charts/zdr (needs helm),
#                  and the tests use it (ZDR_E2E_EXTERNAL_CONTROLLER=1).
#   ZDR_IMAGE      image to build and load (default ghcr.io/zdr-dev/zdr:e2e).
#   ZDR_SKIP_IMAGE 1: do not build/load the image (local mode only).
#   Anything the tests read (ZDR_E2E_TIMEOUT_SECONDS, ZDR_E2E_IMAGE, ...) is passed through.

ZDR_IMAGE="${ZDR_IMAGE:-ghcr.io/zdr-dev/zdr:e2e}"
ZDR_E2E_MODE="${ZDR_E2E_MODE:-local}"
ZDR_SKIP_IMAGE="${ZDR_SKIP_IMAGE:-0}"

case "$ZDR_E2E_MODE" in
  local | chart) ;;
  *)
    echo "e2e: ZDR_E2E_MODE must be local or chart, not '$ZDR_E2E_MODE'" >&2
    exit 2
    ;;
esac

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "e2e: '$1' is required but not on PATH" >&2
    exit 1
  }
}

build_and_load_image() {
  if [[ "$ZDR_E2E_MODE" == local && "$ZDR_SKIP_IMAGE" == 1 ]]; then
    echo "== e2e: skipping the image build (ZDR_SKIP_IMAGE=1)"
    return
  fi
  need docker
  docker info >/dev/null 2>&1 || {
    echo "e2e: the docker daemon is not reachable" >&2
    exit 1
  }
  echo "== e2e: docker build -t $ZDR_IMAGE ."
  docker build -t "$ZDR_IMAGE" .
  echo "== e2e: loading $ZDR_IMAGE into the cluster"
  load_image "$ZDR_IMAGE"
}

install_controller() {
  case "$ZDR_E2E_MODE" in
    local)
      # The suite renders the chart with the Helm library and runs each controller with its RBAC.
      python3 -c 'import helm_python' 2>/dev/null || {
        echo "e2e: the suite needs helm-python-sdk to render the chart's RBAC: pip install helm-python-sdk==0.2.2" >&2
        exit 1
      }
      echo "== e2e: each test starts its own zdr-controller (target/debug), with the chart's RBAC"
      ;;
    chart)
      need helm
      local repo="${ZDR_IMAGE%:*}" tag="${ZDR_IMAGE##*:}"
      echo "== e2e: helm install charts/zdr with $repo:$tag"
      helm upgrade --install zdr charts/zdr \
        --namespace zdr-system --create-namespace \
        --set "image.repository=$repo" --set "image.tag=$tag" \
        --set image.pullPolicy=Never --set endpointPropagationSeconds=1 \
        --wait --timeout 3m
      export ZDR_E2E_EXTERNAL_CONTROLLER=1
      ;;
  esac
}

run_e2e() {
  need cargo
  build_and_load_image
  install_controller
  echo "== e2e: cargo test --locked --test e2e"
  ZDR_REQUIRE_CLUSTER=1 cargo test --locked --test e2e -- --nocapture
}
