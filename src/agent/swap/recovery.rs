//! The IO side of recovery after a sidecar restart: checking and adopting the sockets that
//! launchers hand back, binding what nobody held, the state file in the shared directory, and
//! the markers of claim generations whose swap failed.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use super::{Machine, MachineError, Persisted};
use crate::agent::sockets::{Held, matches_spec};

impl Machine {
    /// Takes over the handed-back sockets that are configured and match their spec; returns
    /// their names. The others are closed.
    pub(super) fn adopt(&mut self, held: Vec<(String, OwnedFd)>) -> Vec<String> {
        let mut names = Vec::new();
        if self.sockets.is_some() {
            return names; // Already holding them: the launcher's copies are simply dropped here.
        }
        for (name, fd) in held {
            let Some(spec) = self.cfg.specs.iter().find(|s| s.name == name) else {
                tracing::warn!(%name, "launcher handed back a socket that is not configured; closed");
                continue;
            };
            if self.adopting.iter().any(|h| h.name == name) {
                continue;
            }
            if !matches_spec(fd.as_fd(), &spec.addr) {
                tracing::warn!(%name, "handed-back socket does not match its spec; closed");
                continue;
            }
            let bound = crate::agent::sockets::local_addr(fd.as_fd()).unwrap_or_default();
            tracing::info!(%name, %bound, "adopted socket from launcher");
            names.push(name.clone());
            self.adopting.push(Held {
                name,
                spec: spec.addr.clone(),
                bound,
                fd,
                adopted: true,
            });
        }
        names
    }

    /// End of recovery: hold the adopted sockets, and bind those nobody handed back.
    pub(super) fn bind_missing(&mut self) -> Result<(), MachineError> {
        let mut held = Vec::new();
        for spec in &self.cfg.specs {
            if let Some(i) = self.adopting.iter().position(|h| h.name == spec.name) {
                held.push(self.adopting.swap_remove(i));
            } else {
                tracing::info!(name = %spec.name, "no launcher handed it back: binding");
                held.push(
                    Held::bind(spec, self.cfg.backlog)
                        .map_err(|e| MachineError::Bind(spec.addr.to_string(), e))?,
                );
            }
        }
        self.adopting.clear();
        self.sockets = Some(Arc::new(held));
        Ok(())
    }

    /// Writes the marker of a failed claim generation next to the state file; a failure to
    /// write it is logged (the launcher is told anyway).
    pub(super) fn mark_failed(&self, slot: &str, generation: u64, reason: &str) {
        let dir = self.cfg.state_path.parent().unwrap_or(Path::new("."));
        if let Err(e) = write_failed(dir, generation, reason) {
            tracing::error!(%slot, generation, dir = %dir.display(), error = %e, "could not write the failed-swap marker: a restarted sidecar may start this claim again");
        }
    }

    pub(super) fn save_state(&self, p: &Persisted) {
        let tmp = self.cfg.state_path.with_extension("tmp");
        let ok = serde_json::to_vec(p)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|_| std::fs::rename(&tmp, &self.cfg.state_path).ok());
        if ok.is_none() {
            tracing::warn!(path = %self.cfg.state_path.display(), "could not save sidecar state");
        }
    }
}

/// File name prefix of a failed generation's marker: `failed-<generation>`.
pub const FAILED_PREFIX: &str = "failed-";

/// Writes `dir/failed-<generation>` (the reason inside) atomically: a temporary file in the same
/// directory, fsync, rename.
fn write_failed(dir: &Path, generation: u64, reason: &str) -> std::io::Result<()> {
    let path = dir.join(format!("{FAILED_PREFIX}{generation}"));
    let tmp = dir.join(format!(".{FAILED_PREFIX}{generation}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(reason.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// The failed generations whose markers are in `dir`; other files are ignored, an unreadable
/// directory is logged and reads as none.
pub fn read_failed(dir: &Path) -> BTreeSet<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read failed-swap markers");
            }
            return BTreeSet::new();
        }
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_prefix(FAILED_PREFIX)?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_markers_round_trip_and_other_files_are_ignored() {
        let path = std::env::temp_dir().join(format!("zdr-failed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        struct Dir(std::path::PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Dir(path);
        let dir = &dir;
        impl Dir {
            fn path(&self) -> &Path {
                &self.0
            }
        }
        assert!(read_failed(dir.path()).is_empty());
        write_failed(dir.path(), 7, "exited before it was ready").unwrap();
        write_failed(dir.path(), 12, "not ready in time").unwrap();
        std::fs::write(dir.path().join("failed-x"), "").unwrap();
        std::fs::write(dir.path().join("sidecar-state.json"), "{}").unwrap();
        assert_eq!(read_failed(dir.path()), BTreeSet::from([7, 12]));
        let text = std::fs::read_to_string(dir.path().join("failed-7")).unwrap();
        assert_eq!(text, "exited before it was ready\n");
        assert!(read_failed(&dir.path().join("missing")).is_empty());
    }
}
