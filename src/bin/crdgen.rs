//! Generates the ZeroDowntimeRollout CRD from the Rust types.
//!
//! - `cargo run --bin crdgen` prints it as YAML on stdout.
//! - `cargo run --bin crdgen -- --write` writes it to every committed copy:
//!   `crds/zerodowntimerollouts.yaml` and the Helm chart's `charts/zdr/crds/zerodowntimerollouts.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

/// The committed copies of the CRD, relative to the crate root (also checked by `tests/chart.rs`).
const COPIES: [&str; 2] = [
    "crds/zerodowntimerollouts.yaml",
    "charts/zdr/crds/zerodowntimerollouts.yaml",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let yaml = zdr::crd::crd_yaml();
    match args.as_slice() {
        [] => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        [flag] if flag == "--write" => {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            for rel in COPIES {
                let path = root.join(rel);
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, &yaml));
                if let Err(e) = written {
                    eprintln!("crdgen: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("crdgen: wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        [flag] if flag == "-h" || flag == "--help" => {
            println!(
                "usage: crdgen [--write]\n  (no flag)  print the CRD as YAML on stdout\n  --write    write {}",
                COPIES.join(" and ")
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("crdgen: unexpected arguments {args:?}; usage: crdgen [--write]");
            ExitCode::from(2)
        }
    }
}
