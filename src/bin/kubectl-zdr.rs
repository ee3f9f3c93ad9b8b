//! `kubectl zdr`: the kubectl plugin for ZeroDowntimeRollouts. Logic lives in `zdr::plugin`.

use clap::{Parser, Subcommand};
use zdr::plugin::{actions, cluster, plan};

#[derive(Parser)]
#[command(
    name = "kubectl-zdr",
    version,
    about = "Inspect and drive ZeroDowntimeRollouts"
)]
struct Cli {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offline: the waves (or canary steps and weights) that applying FILE would go through.
    Plan {
        /// A manifest with one or more ZeroDowntimeRollouts.
        file: String,
        /// Plan a first install (no existing pods) instead of an update of running pods.
        #[arg(long)]
        fresh: bool,
        /// Seconds a new pod is assumed to take to turn Ready (pull, start, probes), for the
        /// timeline.
        #[arg(long, default_value_t = 1)]
        assume_ready_seconds: u64,
        /// The controller's --endpoint-propagation-seconds, for the timeline.
        #[arg(long, default_value_t = 5)]
        propagation_seconds: u64,
    },
    /// Phase, canary steps, traffic, pods per revision, conditions and analysis of a rollout.
    Status {
        /// Name of the ZeroDowntimeRollout.
        name: String,
        /// Keep printing on every change.
        #[arg(short, long)]
        watch: bool,
    },
    /// Move a canary past its current step (a pause, an analysis gate, a step still waiting)
    /// by setting the zdr.dev/promote annotation.
    Promote {
        /// Name of the ZeroDowntimeRollout.
        name: String,
        /// Skip every remaining step, analysis steps included: go straight to the promotion.
        #[arg(long)]
        full: bool,
    },
    /// Restart an aborted update, a canary from step 0 (sets zdr.dev/retry, removes
    /// zdr.dev/abort and zdr.dev/promote).
    Retry {
        /// Name of the ZeroDowntimeRollout.
        name: String,
    },
    /// Stop progress (sets the zdr.dev/paused annotation, not spec.paused, so a GitOps tool sees
    /// no drift; scaling still works).
    Pause {
        /// Name of the ZeroDowntimeRollout.
        name: String,
    },
    /// Resume progress: removes zdr.dev/paused and resumes an inconclusive analysis (refused
    /// while spec.paused is true: that is changed in the manifest).
    Resume {
        /// Name of the ZeroDowntimeRollout.
        name: String,
    },
    /// Abort the update in progress and roll back to the stable revision (sets zdr.dev/abort).
    Abort {
        /// Name of the ZeroDowntimeRollout.
        name: String,
    },
    /// The rollout's revisions and their images.
    History {
        /// Name of the ZeroDowntimeRollout.
        name: String,
    },
    /// Roll back: put the previous revision's template (or --to-revision's) back into the spec.
    Undo {
        /// Name of the ZeroDowntimeRollout.
        name: String,
        /// Revision number, as `history` lists it.
        #[arg(long)]
        to_revision: Option<i64>,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan {
            file,
            fresh,
            assume_ready_seconds,
            propagation_seconds,
        } => plan::plan_file(
            &file,
            &plan::PlanOptions {
                fresh,
                timing: zdr::planner::Timing {
                    ready_after: std::time::Duration::from_secs(assume_ready_seconds),
                    propagation: std::time::Duration::from_secs(propagation_seconds),
                },
            },
        )
        .map(|out| print!("{out}"))
        .map_err(|e| e.to_string()),
        cmd => in_cluster(cli.namespace, cmd).await,
    };
    if let Err(e) = result {
        eprintln!("kubectl-zdr: {e}");
        std::process::exit(1);
    }
}

async fn in_cluster(namespace: Option<String>, cmd: Command) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("no cluster configured: {e}"))?;
    let ns = namespace.unwrap_or_else(|| client.default_namespace().to_string());
    if let Command::Undo { name, to_revision } = cmd {
        return cluster::undo(client, &ns, &name, to_revision).await;
    }
    let r = match cmd {
        Command::Status { name, watch } => cluster::status(client, &ns, &name, watch).await,
        Command::Pause { name } => return actions::pause(client, &ns, &name).await,
        Command::Resume { name } => return actions::resume(client, &ns, &name).await,
        Command::Abort { name } => return actions::abort(client, &ns, &name).await,
        Command::Promote { name, full } => return actions::promote(client, &ns, &name, full).await,
        Command::Retry { name } => return actions::retry(client, &ns, &name).await,
        Command::History { name } => cluster::history(client, &ns, &name).await,
        Command::Plan { .. } | Command::Undo { .. } => unreachable!("handled above"),
    };
    r.map_err(|e| e.to_string())
}
