//! `zdr-controller`: reconciles ZeroDowntimeRollout objects. All logic lives in `zdr::controller`.

use clap::Parser;
use zdr::controller::run::{Args, run};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    zdr::telemetry::init(args.log_format);
    if let Err(e) = run(args).await {
        tracing::error!(error = %e, "zdr-controller cannot start");
        eprintln!("zdr-controller: {e}");
        std::process::exit(1);
    }
}
