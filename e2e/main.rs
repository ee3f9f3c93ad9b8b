//! End-to-end tests of zdr against a real Kubernetes cluster (kind, k3d, any conformant one):
//! rolling update and rollback under the surge/availability bounds, `paused`, the progress
//! deadline, and an update aborted by its SLO analysis. See docs/e2e.md.
//!
//! They run only when `KUBECONFIG` names a reachable cluster; otherwise each test prints
//! `SKIPPED: no cluster: <why>` and passes, unless `ZDR_REQUIRE_CLUSTER=1` makes that a failure.
//! Each test gets its own namespace and, unless `ZDR_E2E_EXTERNAL_CONTROLLER=1`, its own
//! zdr-controller child process watching only that namespace.

mod analysis;
mod cluster;
mod deadline;
mod examples;
mod paused;
mod pods;
mod rolling;
