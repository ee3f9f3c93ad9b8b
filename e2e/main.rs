//! End-to-end tests of zdr against a real Kubernetes cluster (kind, k3d, the local control plane
//! of `../shared/k8s`, any conformant one): rolling update and rollback under the
//! surge/availability bounds, `paused`, the chart's namespaced RBAC, the progress deadline, an update aborted by its SLO
//! analysis, canaries through a Gateway API HTTPRoute, and hot swaps inside running pods. See docs/e2e.md.
//!
//! They run only when `KUBECONFIG` names a reachable cluster; otherwise each test prints
//! `SKIPPED: no cluster: <why>` and passes, unless `ZDR_REQUIRE_CLUSTER=1` makes that a failure.
//! Each test gets its own namespace and, unless `ZDR_E2E_EXTERNAL_CONTROLLER=1`, its own
//! zdr-controller child process watching only that namespace, with the chart's RBAC.
//!
//! The target has its own harness (`harness = false`, libtest-mimic: same command line and
//! output as libtest) so that the suite has a set-up and a check after the tests: `suite.rs`.
//! Tests whose name starts with `traffic_` need real traffic through pods, hence a cluster with
//! a real network: `-- --skip traffic_` leaves them out on the simulated kubelet.

mod analysis;
mod argocd;
mod canary;
mod canary_analysis;
mod canary_chaos;
mod canary_checks;
mod chaos;
mod cluster;
mod deadline;
mod examples;
mod gateway;
mod hotswap;
mod hotswap_render;
mod hotswap_traffic;
mod istio;
mod namespaces;
mod paused;
mod pods;
mod rbac;
mod restart;
mod rolling;
mod stuck;
mod suite;
mod timeline;
mod validate;
#[path = "../tests/validate/cases.rs"]
mod validate_cases;

use suite::{Body, Test};

/// A test on the cluster: `on_cluster!(module::function)`, an `async fn()`.
macro_rules! on_cluster {
    ($m:ident :: $f:ident) => {
        Test {
            name: concat!(stringify!($m), "::", stringify!($f)),
            cluster: true,
            body: Body::Async(|| Box::pin($m::$f())),
        }
    };
}

/// A test without the cluster: an `async fn()`.
macro_rules! local_async {
    ($m:ident :: $f:ident) => {
        Test {
            name: concat!(stringify!($m), "::", stringify!($f)),
            cluster: false,
            body: Body::Async(|| Box::pin($m::$f())),
        }
    };
}

/// A test without the cluster: a plain `fn()`.
macro_rules! local {
    ($m:ident :: $t:ident :: $f:ident) => {
        Test {
            name: concat!(stringify!($m), "::", stringify!($t), "::", stringify!($f)),
            cluster: false,
            body: Body::Sync($m::$t::$f),
        }
    };
}

fn main() -> std::process::ExitCode {
    suite::main(tests())
}

/// Every test of the suite. A `pub` test function not listed here would never run:
/// `every_test_function_is_listed` checks the sources for that.
fn tests() -> Vec<Test> {
    vec![
        on_cluster!(analysis::a_failing_analysis_aborts_the_update_and_rolls_back_to_stable),
        on_cluster!(argocd::argocd_pause_and_resume_actions_hold_then_release_an_update),
        on_cluster!(canary::canary_through_a_header_route_two_weights_and_promotion),
        on_cluster!(canary::canary_aborted_in_the_middle_returns_the_weight_before_removing_pods),
        on_cluster!(canary_analysis::canary_analysis_step_gates_then_passes),
        on_cluster!(
            canary_analysis::canary_failing_analysis_aborts_mid_canary_and_returns_the_weight_first
        ),
        on_cluster!(canary_chaos::canary_survives_controller_kills_at_random_moments),
        on_cluster!(canary_chaos::canary_aborted_while_the_controller_is_killed_returns_to_stable),
        on_cluster!(canary_chaos::canary_scaled_mid_way_keeps_the_rules),
        on_cluster!(canary_chaos::canary_through_an_istio_virtualservice),
        on_cluster!(deadline::progress_deadline_marks_the_rollout_degraded),
        on_cluster!(hotswap::hot_swap_updates_pods_in_place_through_a_controller_restart_and_back),
        on_cluster!(hotswap::a_new_version_that_cannot_start_is_reverted_in_place_and_aborts),
        on_cluster!(hotswap::scaled_up_and_down_mid_swap_ends_with_every_pod_on_the_new_revision),
        on_cluster!(
            hotswap::hot_swaps_keep_the_bounds_while_the_controller_is_killed_at_random_moments
        ),
        on_cluster!(hotswap_traffic::traffic_hot_swap_through_a_service_drops_nothing),
        on_cluster!(examples::the_api_server_accepts_every_example_and_rejects_both_zero),
        on_cluster!(hotswap_render::hot_swap_pods_are_admitted_under_restricted_and_turn_ready),
        on_cluster!(namespaces::namespaced_rbac_manages_its_namespace_and_leaves_others_alone),
        on_cluster!(paused::paused_rollout_makes_no_progress_until_resumed),
        on_cluster!(validate::the_api_server_and_validate_agree_on_every_case),
        on_cluster!(validate::the_plugin_takes_the_namespace_after_the_subcommand),
        on_cluster!(rolling::rolling_update_keeps_capacity_and_rollback_reuses_the_revision),
        on_cluster!(rolling::termination_started_overlaps_the_drain_within_the_bounds),
        on_cluster!(restart::controller_killed_at_random_moments_keeps_the_bounds),
        on_cluster!(stuck::unschedulable_pods_are_named_and_the_block_clears_once_fixed),
        local_async!(analysis::the_fake_prometheus_answers_like_prometheus),
        local!(pods::tests::a_surge_pod_is_fine_a_second_one_is_not),
        local!(pods::tests::a_pod_being_deleted_is_not_available_but_still_counts),
        local!(pods::tests::termination_started_counts_only_pods_that_serve_or_start),
        local!(pods::tests::a_pod_deleted_while_ready_is_reported),
        local!(pods::tests::finished_pods_do_not_count_and_a_relist_replaces_the_set),
        local!(pods::tests::percentages_round_like_a_deployment),
        Test {
            name: "main::every_test_function_is_listed",
            cluster: false,
            body: Body::Sync(every_test_function_is_listed),
        },
    ]
}

/// The `pub async fn` tests of the scenario modules and the `pub fn` of `pods::tests` all appear
/// in [`tests`].
fn every_test_function_is_listed() {
    let listed: Vec<&str> = tests().iter().map(|t| t.name).collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e");
    let modules = [
        "analysis",
        "argocd",
        "canary",
        "canary_analysis",
        "canary_chaos",
        "deadline",
        "examples",
        "hotswap",
        "hotswap_render",
        "hotswap_traffic",
        "namespaces",
        "paused",
        "restart",
        "rolling",
        "stuck",
        "validate",
    ];
    let mut missing = Vec::new();
    for m in modules {
        let src = std::fs::read_to_string(format!("{dir}/{m}.rs")).expect("an e2e module");
        for line in src.lines() {
            if let Some(rest) = line.strip_prefix("pub async fn ") {
                let f = rest.split('(').next().unwrap_or_default();
                if !listed.contains(&format!("{m}::{f}").as_str()) {
                    missing.push(format!("{m}::{f}"));
                }
            }
        }
    }
    let pods = std::fs::read_to_string(format!("{dir}/pods.rs")).expect("e2e/pods.rs");
    let tests_mod = pods.split("pub mod tests").nth(1).unwrap_or_default();
    for line in tests_mod.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("pub fn ") {
            let f = rest.split('(').next().unwrap_or_default();
            if !listed.contains(&format!("pods::tests::{f}").as_str()) {
                missing.push(format!("pods::tests::{f}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "test functions not listed in e2e/main.rs tests(): {missing:?}"
    );
    assert!(listed.len() >= 15, "the sources were read: {listed:?}");
}
