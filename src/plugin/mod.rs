//! `kubectl zdr`: the kubectl plugin. [`plan`] works offline on a manifest; [`cluster`] reads
//! and drives rollouts in a cluster.

pub mod cluster;
pub mod plan;
