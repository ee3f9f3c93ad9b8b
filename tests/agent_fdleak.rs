//! No descriptor leaks: the open-fd counts of the sidecar and both launchers (and the files in
//! the shared directory) are the same after 201 swaps as after 1.

mod common;

use std::time::{Duration, Instant};

use common::*;
use zdr::contract::SwapResult;

fn dir_entries(d: &std::path::Path) -> usize {
    std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fd_counts_are_flat_over_200_swaps() {
    bounded(150, async {
        let mut pod = pod_ab(&[], &[]).await;
        let pids = [pod.sidecar_pid().unwrap(), pod.launcher_pid("a").unwrap(), pod.launcher_pid("b").unwrap()];
        let load = load(pod.addr, 2, 300);
        let r = pod.swap(Some("b")).await.unwrap();
        assert_eq!(r.result, SwapResult::Succeeded);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after_1: Vec<usize> = pids.iter().map(|p| fd_count(*p)).collect();
        let files_1 = dir_entries(&pod.dir);

        let t = Instant::now();
        for i in 0..200 {
            let to = if i % 2 == 0 { "a" } else { "b" };
            let r = pod.swap(Some(to)).await.unwrap();
            assert_eq!(r.result, SwapResult::Succeeded, "swap {}: {r:?}", i + 2);
        }
        let took = t.elapsed();
        load.stop();
        let rep = load.finish().await;
        assert_clean(&rep, "200 swaps");
        // Same configuration as after swap 1: b active, a idle.
        let st = pod.status().await.unwrap();
        assert_eq!(st.active_slot.as_deref(), Some("b"));
        assert_eq!(st.swaps_succeeded, 201);
        let mut after_201 = Vec::new();
        for (p, want) in pids.iter().zip(&after_1) {
            after_201.push(settled_fd_count(*p, *want).await);
        }
        eprintln!("fd counts [sidecar, launcher a, launcher b]: after 1 swap {after_1:?}, after 201 swaps {after_201:?}; 200 swaps took {took:?}");
        assert_eq!(after_1, after_201, "descriptor leak");
        assert_eq!(dir_entries(&pod.dir), files_1, "files left behind in the shared directory");
        pod.shutdown(Duration::from_secs(10)).await;
    })
    .await;
}
