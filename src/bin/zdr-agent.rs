//! `zdr-agent`: the in-pod agent. `sidecar` holds the pod's sockets, `exec` runs an app on them
//! in a slot, `ctl` drives and inspects the sidecar. See docs/agent.md.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use zdr::agent::cli::{parse_duration, parse_signal};
use zdr::agent::sockets::ListenSpec;
use zdr::agent::{ctl, launcher, sidecar};
use zdr::contract::SwapResult;
use zdr::contract::pod::Claim;
use zdr::demo::demoapp;
use zdr::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "zdr-agent",
    version,
    about = "zdr in-pod agent: holds listening sockets and hot-swaps app processes"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "ZDR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hold the pod's listening sockets and serve them to launchers.
    Sidecar {
        /// Shared directory (an emptyDir) for the control socket.
        #[arg(long, env = "ZDR_AGENT_DIR", default_value = "/run/zdr")]
        dir: PathBuf,
        /// Socket to hold, `name=addr` (`http=0.0.0.0:8080`, `admin=unix:/run/a.sock`); repeat.
        #[arg(long = "listen", required = true)]
        listen: Vec<ListenSpec>,
        /// Read-only HTTP endpoint (/status, /metrics, /livez, /readyz).
        #[arg(long, env = "ZDR_AGENT_HTTP_ADDR", default_value = "0.0.0.0:9901")]
        http_addr: SocketAddr,
        /// listen(2) backlog of the held sockets.
        #[arg(long, default_value_t = 4096)]
        backlog: i32,
        /// Signal that tells the old version to drain.
        #[arg(long, default_value = "SIGTERM", value_parser = parse_signal)]
        drain_signal: i32,
        /// Grace after the drain signal before SIGKILL.
        #[arg(long, default_value_t = 30)]
        drain_timeout_seconds: u64,
        /// Deadline for the new version's readiness; past it the swap fails.
        #[arg(long, default_value_t = 60)]
        ready_timeout_seconds: u64,
        /// After a sidecar restart, how long to wait for launchers to hand the sockets back.
        #[arg(long, default_value_t = 10)]
        recover_timeout_seconds: u64,
        /// Copy this binary to PATH (atomically, mode 0755) before binding, for the slots of a
        /// hot-swap pod (`/zdr/bin/zdr-agent`).
        #[arg(long, value_name = "PATH")]
        install: Option<PathBuf>,
    },
    /// Run an app in a slot on the sidecar's sockets (LISTEN_FDS, NOTIFY_SOCKET).
    Exec {
        /// Shared directory with the sidecar's control socket.
        #[arg(long, env = "ZDR_AGENT_DIR", default_value = "/run/zdr")]
        dir: PathBuf,
        /// Slot name (e.g. a, b).
        #[arg(long, env = "ZDR_SLOT", default_value = "a")]
        slot: String,
        /// Label of the app's version in status and metrics (not this binary's version).
        /// Default: the file name of the app's command (`/app/server` gives `server`).
        #[arg(long = "app-version", env = "ZDR_VERSION", value_name = "LABEL")]
        app_version: Option<String>,
        /// Fallback for apps that never send READY=1: ready after this long alive (e.g. 2s).
        #[arg(long, value_parser = parse_duration)]
        ready_after: Option<Duration>,
        /// Signal for the app when the launcher itself is stopped (SIGTERM/SIGINT).
        #[arg(long, default_value = "SIGTERM", value_parser = parse_signal)]
        stop_signal: i32,
        /// Grace before SIGKILL when the launcher is stopped.
        #[arg(long, default_value_t = 30)]
        stop_timeout_seconds: u64,
        /// Give up if the sidecar is unreachable this long at start-up.
        #[arg(long, default_value_t = 60)]
        connect_timeout_seconds: u64,
        /// The app and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
    /// Drive or inspect the sidecar.
    Ctl {
        /// Shared directory with the sidecar's control socket (before or after the subcommand).
        #[arg(long, global = true, env = "ZDR_AGENT_DIR", default_value = "/run/zdr")]
        dir: PathBuf,
        #[command(subcommand)]
        cmd: CtlCmd,
    },
    /// The demo HTTP app (used by `zdr demo`, the benchmark and tests).
    #[command(hide = true)]
    DemoApp(demoapp::DemoAppConfig),
    /// The load generator, printing one JSON line (the e2e traffic tests run it in a pod).
    #[command(hide = true)]
    Load(zdr::demo::loadgen::LoadArgs),
    /// Internal: the exec shim (sets LISTEN_PID to its own pid, then execs the app).
    #[command(name = "__shim", hide = true)]
    Shim {
        /// Signal to get when the launcher dies.
        #[arg(long)]
        pdeathsig: Option<i32>,
        /// The launcher's pid.
        #[arg(long)]
        parent: Option<i32>,
        /// The app and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Swap to the standby slot; waits for the result and prints it as JSON. Exit code 0 when
    /// the swap succeeded, 1 when the sidecar refused it or could not be asked, 2 when it failed.
    Swap {
        /// Target slot (default: the one idle slot).
        #[arg(long)]
        to: Option<String>,
        /// Give up waiting after this long.
        #[arg(long, default_value = "300s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Print the status JSON.
    Status,
}

fn runtime(current_thread: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Shim {
        pdeathsig,
        parent,
        cmd,
    } = &cli.cmd
    {
        // Only returns on failure.
        let e = launcher::shim(cmd, *pdeathsig, *parent);
        eprintln!("{e}");
        return ExitCode::from(127);
    }
    telemetry::init(cli.log_format);
    // The launcher forks from the thread that will outlive its app (PR_SET_PDEATHSIG is per
    // thread): a single-threaded runtime.
    let single = matches!(cli.cmd, Cmd::Exec { .. } | Cmd::Ctl { .. });
    let rt = match runtime(single) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zdr-agent: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Sidecar {
                dir,
                listen,
                http_addr,
                backlog,
                drain_signal,
                drain_timeout_seconds,
                ready_timeout_seconds,
                recover_timeout_seconds,
                install,
            } => {
                let cfg = sidecar::SidecarConfig {
                    dir,
                    listen,
                    http_addr,
                    backlog,
                    drain_signal,
                    drain_timeout: Duration::from_secs(drain_timeout_seconds),
                    ready_timeout: Duration::from_secs(ready_timeout_seconds),
                    recover_timeout: Duration::from_secs(recover_timeout_seconds),
                    install,
                };
                match sidecar::run(cfg).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "sidecar failed");
                        ExitCode::FAILURE
                    }
                }
            }
            Cmd::Exec {
                dir,
                slot,
                app_version,
                ready_after,
                stop_signal,
                stop_timeout_seconds,
                connect_timeout_seconds,
                cmd,
            } => {
                let claim = match Claim::from_env(|k| std::env::var(k).ok()) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("zdr-agent exec: invalid hot-swap claim in the environment: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                if let Some(c) = claim.as_ref().filter(|c| c.slot.as_str() != slot) {
                    eprintln!(
                        "zdr-agent exec: --slot {slot:?} disagrees with the claim's slot {:?} (ZDR_SLOT)",
                        c.slot.as_str()
                    );
                    return ExitCode::FAILURE;
                }
                let termination_log = std::env::var_os(launcher::ENV_TERMINATION_LOG)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(launcher::DEFAULT_TERMINATION_LOG));
                let version = app_version.unwrap_or_else(|| {
                    cmd.first()
                        .map(|c| {
                            PathBuf::from(c)
                                .file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        })
                        .unwrap_or_default()
                });
                let cfg = launcher::LauncherConfig {
                    dir,
                    slot,
                    version,
                    ready_after,
                    stop_signal,
                    stop_timeout: Duration::from_secs(stop_timeout_seconds),
                    connect_timeout: Duration::from_secs(connect_timeout_seconds),
                    cmd,
                    claim,
                    termination_log,
                };
                match launcher::run(cfg).await {
                    Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
                    Err(e) => {
                        tracing::error!(error = %e, "launcher failed");
                        ExitCode::FAILURE
                    }
                }
            }
            Cmd::Ctl { dir, cmd } => {
                let r = match cmd {
                    CtlCmd::Swap { to, timeout } => ctl::swap(&dir, to, timeout).await.map(|r| {
                        let ok = r.result == SwapResult::Succeeded;
                        (serde_json::to_string_pretty(&r).unwrap_or_default(), ok)
                    }),
                    CtlCmd::Status => ctl::status(&dir)
                        .await
                        .map(|s| (serde_json::to_string_pretty(&s).unwrap_or_default(), true)),
                };
                match r {
                    Ok((json, ok)) => {
                        println!("{json}");
                        if ok {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(2)
                        }
                    }
                    Err(e) => {
                        eprintln!("zdr-agent ctl: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Cmd::DemoApp(cfg) => match demoapp::run(cfg).await {
                Ok(code) => ExitCode::from(code as u8),
                Err(e) => {
                    eprintln!("demo-app: {e}");
                    ExitCode::FAILURE
                }
            },
            Cmd::Load(args) => match zdr::demo::loadgen::run_args(&args).await {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("zdr-agent load: {e}");
                    ExitCode::from(2)
                }
            },
            Cmd::Shim { .. } => ExitCode::FAILURE,
        }
    })
}
