//! `zdr-agent sidecar --install PATH`: the sidecar copies its own binary into the pod's shared
//! volume, so slots running any image can run `/zdr/bin/zdr-agent exec`. The copy is atomic (a
//! temporary file in the same directory, fsync, mode 0755, rename): a slot never sees half a
//! binary, and a restarted sidecar replaces the file a running launcher still executes.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why the binary could not be installed; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The running executable could not be found or read.
    #[error("--install {0}: cannot read the running executable {1}: {2}")]
    Source(PathBuf, PathBuf, io::Error),
    /// Writing the copy failed.
    #[error("--install {0}: {1}: {2}")]
    Write(PathBuf, &'static str, io::Error),
}

/// Copies the running executable to `dest` atomically.
pub fn install_self(dest: &Path) -> Result<(), InstallError> {
    let src = std::env::current_exe()
        .map_err(|e| InstallError::Source(dest.to_owned(), PathBuf::from("?"), e))?;
    install(&src, dest)
}

/// Copies `src` to `dest` atomically, with mode 0755, creating the parent directory.
pub fn install(src: &Path, dest: &Path) -> Result<(), InstallError> {
    let werr = |what, e| InstallError::Write(dest.to_owned(), what, e);
    let bytes = std::fs::read(src).map_err(|e| InstallError::Source(dest.into(), src.into(), e))?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| werr("creating its directory", e))?;
    let name = dest
        .file_name()
        .ok_or_else(|| werr("no file name", io::ErrorKind::InvalidInput.into()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| werr("creating a temporary file", e))?;
        f.write_all(&bytes).map_err(|e| werr("writing", e))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))
            .map_err(|e| werr("chmod 0755", e))?;
        f.sync_all().map_err(|e| werr("fsync", e))?;
        std::fs::rename(&tmp, dest).map_err(|e| werr("renaming into place", e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_atomically_with_mode_0755_and_names_the_path_on_error() {
        let base = std::env::temp_dir().join(format!("zdr-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let src = base.join("src-bin");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
        let dest = base.join("zdr/bin/zdr-agent");
        install(&src, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"#!/bin/sh\necho hi\n");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
        // Installing again replaces the file; no temporary file is left behind.
        std::fs::write(&src, b"v2").unwrap();
        install(&src, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"v2");
        let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        // A parent that is a file: the error names the destination.
        let bad = base.join("src-bin/zdr-agent");
        let e = install(&src, &bad).unwrap_err().to_string();
        assert!(e.contains(&bad.display().to_string()), "{e}");
        let e = install(&base.join("missing"), &dest)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
