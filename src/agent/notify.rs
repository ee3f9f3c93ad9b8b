//! `NOTIFY_SOCKET`, both ends: the launcher's datagram socket that receives `READY=1` (with the
//! sender's pid from SCM_CREDENTIALS), and `notify()` for apps (the demo app) to send it.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, setsockopt, sockopt};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// One notification datagram: the sender's pid (when the kernel told us) and its assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Sender pid from SCM_CREDENTIALS.
    pub pid: Option<i32>,
    /// `KEY=VALUE` lines.
    pub fields: Vec<(String, String)>,
}

impl Notification {
    /// Whether it carries `READY=1`.
    pub fn is_ready(&self) -> bool {
        self.fields.iter().any(|(k, v)| k == "READY" && v == "1")
    }
}

/// The launcher's end: a Unix datagram socket in the shared directory, removed on drop.
pub struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds at `path` (replacing a stale file), readable by the pod's user only, with
    /// SO_PASSCRED so every datagram carries the sender's pid.
    pub fn bind(path: &Path) -> io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        setsockopt(&sock.as_fd(), sockopt::PassCred, &true).map_err(io::Error::from)?;
        Ok(NotifySocket {
            sock,
            path: path.to_owned(),
        })
    }

    /// Path to put in `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives the next datagram. Cancel-safe.
    pub async fn recv(&self) -> io::Result<Notification> {
        let fd = self.sock.as_fd().as_raw_fd();
        self.sock
            .async_io(Interest::READABLE, || {
                let mut buf = [0u8; 4096];
                let mut space = nix::cmsg_space!(nix::libc::ucred, [std::os::fd::RawFd; 8]);
                let mut iov = [io::IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<UnixAddr>(
                    fd,
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
                )
                .map_err(io::Error::from)?;
                let n = msg.bytes;
                let mut pid = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        // Descriptors are not part of the protocol: they are dropped (closed)
                        // by ControlMessageOwned::ScmRights going out of scope unused.
                        if let ControlMessageOwned::ScmCredentials(cred) = c {
                            pid = Some(cred.pid());
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                Ok(Notification {
                    pid,
                    fields: parse_fields(&text),
                })
            })
            .await
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Parses `KEY=VALUE` lines; malformed lines are ignored.
pub fn parse_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`, like sd_notify(3). Returns `Ok(false)`
/// when the variable is unset. A leading `@` names an abstract socket.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(&path))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let f = parse_fields("READY=1\nSTATUS=ok go\njunk\n");
        assert_eq!(f.len(), 2);
        let n = Notification {
            pid: None,
            fields: f,
        };
        assert!(n.is_ready());
        assert!(
            !Notification {
                pid: None,
                fields: parse_fields("READY=0")
            }
            .is_ready()
        );
    }

    #[tokio::test]
    async fn receives_with_pid() {
        let dir = std::env::temp_dir().join(format!("zdr-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let s = NotifySocket::bind(&path).unwrap();
        let c = std::os::unix::net::UnixDatagram::unbound().unwrap();
        c.send_to(b"READY=1\n", &path).unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(n.is_ready());
        assert_eq!(n.pid, Some(std::process::id() as i32));
        drop(s);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
