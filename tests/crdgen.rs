//! The real `crdgen` binary: clap's `--help` and `--version`, a refused unknown flag, a closed
//! stdout (`crdgen | head`) that ends it quietly, and `--write` landing in the crate root from
//! any working directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

fn crdgen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("crdgen runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zdr-crdgen-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn help_version_and_unknown_flags() {
    let cwd = tempdir("help");
    let help = crdgen(&["--help"], &cwd);
    assert!(help.status.success(), "{}", text(&help.stderr));
    let out = text(&help.stdout);
    assert!(
        out.contains("--write") && out.contains("--version"),
        "{out}"
    );

    let version = crdgen(&["--version"], &cwd);
    assert!(version.status.success());
    assert_eq!(
        text(&version.stdout).trim(),
        format!("crdgen {}", env!("CARGO_PKG_VERSION"))
    );

    let bad = crdgen(&["--wirte"], &cwd);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--wirte"),
        "{}",
        text(&bad.stderr)
    );
    assert!(bad.stdout.is_empty(), "nothing printed on a refused flag");
}

#[test]
fn prints_the_crd() {
    let out = crdgen(&[], &tempdir("print"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), zdr::crd::crd_yaml());
}

#[test]
fn a_closed_stdout_ends_it_quietly() {
    // The reading end is closed before crdgen starts, so its first write meets EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("crdgen runs");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

#[test]
fn write_lands_in_the_crate_root_from_any_directory() {
    let cwd = tempdir("write");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // File times come from a coarser clock than SystemTime::now(): allow for it.
    let before = SystemTime::now() - Duration::from_secs(1);
    let out = crdgen(&["--write"], &cwd);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    for rel in [
        "crds/zerodowntimerollouts.yaml",
        "charts/zdr/crds/zerodowntimerollouts.yaml",
    ] {
        let path = root.join(rel);
        assert!(err.contains(&format!("wrote {}", path.display())), "{err}");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(modified >= before, "{} was not written", path.display());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            zdr::crd::crd_yaml()
        );
    }
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing written in the working directory: {left:?}"
    );
    let _ = std::fs::remove_dir_all(&cwd);
}
