//! `kubectl zdr`: the kubectl plugin for ZeroDowntimeRollouts. Logic lives in `zdr::plugin`.

use clap::{Args, Parser, Subcommand};
use zdr::plugin::{actions, cluster, plan, validate};

#[derive(Parser)]
#[command(
    name = "kubectl-zdr",
    version,
    about = "Inspect and drive ZeroDowntimeRollouts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The rollout an in-cluster subcommand acts on.
#[derive(Args)]
struct Target {
    /// Name of the ZeroDowntimeRollout (as `kubectl get zdr` lists it).
    name: String,
    /// Namespace of the rollout (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Offline: check FILE as the API server and the controller would (the CRD's schema and
    /// CEL rules, unknown fields, the controller's validation). Exit 0 valid, 1 invalid (or no
    /// ZeroDowntimeRollout in FILE), 2 FILE cannot be read or parsed.
    Validate {
        /// A manifest (multi-document YAML) with one or more ZeroDowntimeRollouts; `-` reads
        /// stdin.
        file: String,
    },
    /// Offline: the waves (or canary steps and weights) that applying FILE would go through.
    /// Runs `validate`'s checks first and plans nothing if they find a problem.
    Plan {
        /// A manifest (multi-document YAML) with one or more ZeroDowntimeRollouts; `-` reads
        /// stdin.
        file: String,
        /// Plan a first install (no existing pods) instead of an update of running pods.
        #[arg(long)]
        fresh: bool,
        /// The manifest applied now: with `hotSwap`, says whether this change is swapped in
        /// place or replaces pods, and why.
        #[arg(long, value_name = "FILE")]
        from: Option<String>,
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
        #[command(flatten)]
        target: Target,
        /// Keep printing on every change.
        #[arg(short, long)]
        watch: bool,
    },
    /// Move a canary past its current step (a pause, an analysis gate, a step still waiting)
    /// by setting the zdr.dev/promote annotation.
    Promote {
        #[command(flatten)]
        target: Target,
        /// Skip every remaining step, analysis steps included: go straight to the promotion.
        #[arg(long)]
        full: bool,
    },
    /// Restart an aborted update, a canary from step 0 (sets zdr.dev/retry, removes
    /// zdr.dev/abort and zdr.dev/promote).
    Retry(Target),
    /// Stop progress (sets the zdr.dev/paused annotation, not spec.paused, so a GitOps tool sees
    /// no drift; scaling still works).
    Pause(Target),
    /// Resume progress: removes zdr.dev/paused and resumes an inconclusive analysis (refused
    /// while spec.paused is true: that is changed in the manifest).
    Resume(Target),
    /// Abort the update in progress and roll back to the stable revision (sets zdr.dev/abort).
    Abort(Target),
    /// The rollout's revisions and their images.
    History(Target),
    /// Roll back: put the previous revision's template (or --to-revision's) back into the spec.
    Undo {
        #[command(flatten)]
        target: Target,
        /// Revision number, as `history` lists it.
        #[arg(long)]
        to_revision: Option<i64>,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { file } => {
            let (report, outcome) = validate::validate_file(&file);
            match outcome {
                validate::Outcome::Unreadable => eprint!("kubectl-zdr: {report}"),
                _ => print!("{report}"),
            }
            std::process::exit(outcome.code());
        }
        Command::Plan {
            file,
            fresh,
            from,
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
            from.as_deref(),
        )
        .map(|out| print!("{out}"))
        .map_err(|e| e.to_string()),
        cmd => in_cluster(cmd).await,
    };
    if let Err(e) = result {
        eprintln!("kubectl-zdr: {e}");
        std::process::exit(1);
    }
}

async fn in_cluster(cmd: Command) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("no cluster configured: {e}"))?;
    let target = match &cmd {
        Command::Status { target, .. }
        | Command::Promote { target, .. }
        | Command::Undo { target, .. }
        | Command::Retry(target)
        | Command::Pause(target)
        | Command::Resume(target)
        | Command::Abort(target)
        | Command::History(target) => target,
        Command::Validate { .. } | Command::Plan { .. } => unreachable!("handled offline"),
    };
    let ns = target
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let name = target.name.clone();
    let r = match cmd {
        Command::Undo { to_revision, .. } => {
            return cluster::undo(client, &ns, &name, to_revision).await;
        }
        Command::Status { watch, .. } => cluster::status(client, &ns, &name, watch).await,
        Command::Pause(_) => return actions::pause(client, &ns, &name).await,
        Command::Resume(_) => return actions::resume(client, &ns, &name).await,
        Command::Abort(_) => return actions::abort(client, &ns, &name).await,
        Command::Promote { full, .. } => return actions::promote(client, &ns, &name, full).await,
        Command::Retry(_) => return actions::retry(client, &ns, &name).await,
        Command::History(_) => cluster::history(client, &ns, &name).await,
        Command::Validate { .. } | Command::Plan { .. } => unreachable!("handled offline"),
    };
    r.map_err(|e| zdr::plugin::api_error(&e, &ns))
}
