//! `zdr`: the project's command line. `zdr demo` runs a hot swap under load on this machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use zdr::agent::cli::parse_duration;
use zdr::demo::{self, bench};

#[derive(Parser)]
#[command(name = "zdr", version, about = "zero-downtime rollouts")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hot-swap a demo app under load on loopback, with the real agent; no cluster needed.
    Demo {
        /// Swaps to do (alternating between two versions).
        #[arg(long, default_value_t = 6)]
        swaps: u32,
        /// How long to drive load (e.g. 20s).
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        duration: Duration,
        /// Concurrent clients (half new-connection-per-request, half keep-alive).
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// The zdr-agent binary (default: next to this one).
        #[arg(long, env = "ZDR_AGENT_BIN")]
        agent: Option<PathBuf>,
    },
    /// The hot-swap benchmark (run through hack/bench-hotswap).
    #[command(hide = true)]
    BenchHotswap {
        /// Load duration per variant.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        duration: Duration,
        /// Swaps per variant.
        #[arg(long, default_value_t = 5)]
        swaps: u32,
        /// Concurrent clients (half new-connection-per-request, half keep-alive).
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Pause between a client's requests.
        #[arg(long, default_value = "1ms", value_parser = parse_duration)]
        pause: Duration,
        /// The zdr-agent binary (default: next to this one).
        #[arg(long, env = "ZDR_AGENT_BIN")]
        agent: Option<PathBuf>,
    },
}

/// `zdr-agent` next to the running `zdr` binary.
fn sibling_agent() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("zdr-agent")))
        .unwrap_or_else(|| PathBuf::from("zdr-agent"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zdr: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.cmd {
        Cmd::BenchHotswap {
            duration,
            swaps,
            workers,
            pause,
            agent,
        } => {
            if duration.as_secs_f64() > 300.0 || swaps == 0 {
                eprintln!(
                    "zdr bench-hotswap: --duration is capped at 300s and --swaps must be > 0"
                );
                return ExitCode::from(2);
            }
            let cfg = bench::BenchConfig {
                agent: agent.unwrap_or_else(sibling_agent),
                duration,
                swaps,
                workers,
                pause,
            };
            let rows = rt.block_on(bench::run(&cfg));
            println!(
                "load: {workers} clients (half new connection per request, half keep-alive), {pause:?} pause, {duration:?} and {swaps} swaps per variant"
            );
            println!("{}", bench::table(&rows));
            ExitCode::SUCCESS
        }
        Cmd::Demo {
            swaps,
            duration,
            workers,
            agent,
        } => {
            let cfg = demo::DemoConfig {
                agent: agent.unwrap_or_else(sibling_agent),
                swaps,
                duration,
                workers,
            };
            if duration.as_secs_f64() > 300.0 {
                eprintln!("zdr demo: --duration is capped at 300s");
                return ExitCode::from(2);
            }
            match rt.block_on(demo::run(cfg)) {
                Ok(s) => {
                    for e in &s.errors {
                        eprintln!("zdr demo: error sample: {e}");
                    }
                    let versions: Vec<String> =
                        s.versions.iter().map(|(v, n)| format!("{v}:{n}")).collect();
                    eprintln!("zdr demo: responses by version: {}", versions.join(" "));
                    println!("{}", s.line());
                    if s.ok(swaps) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("zdr demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
