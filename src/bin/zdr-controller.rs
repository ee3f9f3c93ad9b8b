//! `zdr-controller`: reconciles ZeroDowntimeRollout objects. All logic lives in `zdr::controller`.

use clap::Parser;
use zdr::controller::run::{Args, run};
use zdr::telemetry::LogFormat;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let format = args.log_format;
    zdr::telemetry::init(format);
    if let Err(e) = run(args).await {
        // Said once: as a plain line for a person, as one JSON record for a log pipeline.
        match format {
            LogFormat::Text => eprintln!("zdr-controller: {e}"),
            LogFormat::Json => tracing::error!(error = %e, "zdr-controller cannot start"),
        }
        std::process::exit(1);
    }
}
