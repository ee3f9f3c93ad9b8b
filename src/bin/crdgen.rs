//! `crdgen`: generates the ZeroDowntimeRollout CRD from the Rust types.
//!
//! - `cargo run --bin crdgen` prints it as YAML on stdout (a closed pipe, as with `| head`,
//!   ends it quietly).
//! - `cargo run --bin crdgen -- --write` writes it to every committed copy, under the crate root
//!   this binary was built from, whatever the working directory:
//!   `crds/zerodowntimerollouts.yaml` and the Helm chart's `charts/zdr/crds/zerodowntimerollouts.yaml`.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// The committed copies of the CRD, relative to the crate root (also checked by `tests/chart.rs`).
const COPIES: [&str; 2] = [
    "crds/zerodowntimerollouts.yaml",
    "charts/zdr/crds/zerodowntimerollouts.yaml",
];

/// `crdgen` command line.
#[derive(Parser)]
#[command(
    name = "crdgen",
    version,
    about = "Generates the ZeroDowntimeRollout CRD from the Rust types: prints it as YAML, or writes the committed copies"
)]
struct Cli {
    /// Write crds/zerodowntimerollouts.yaml and charts/zdr/crds/zerodowntimerollouts.yaml under
    /// the crate root this binary was built from (not the working directory).
    #[arg(long)]
    write: bool,
}

fn write_copies(root: &Path, yaml: &str) -> ExitCode {
    for rel in COPIES {
        let path = root.join(rel);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, yaml));
        if let Err(e) = written {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("crdgen: wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn print(yaml: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader stopped reading (`crdgen | head`): nothing is wrong.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let yaml = zdr::crd::crd_yaml();
    if cli.write {
        write_copies(&PathBuf::from(env!("CARGO_MANIFEST_DIR")), &yaml)
    } else {
        print(&yaml)
    }
}
