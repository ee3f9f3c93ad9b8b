//! The pod's listening sockets: parsing `name=addr` specs, binding them once, and checking that
//! a descriptor handed back by a launcher is the listener it claims to be.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::str::FromStr;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, UnixAddr,
    bind, getsockname, getsockopt, listen, setsockopt, socket, sockopt,
};

/// Where a listener binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// TCP, IPv4 or IPv6 (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:0` for any free port).
    Tcp(SocketAddr),
    /// A Unix stream socket at a filesystem path (`unix:/run/app.sock`).
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One named listener spec, `name=addr`, as given to `zdr-agent sidecar --listen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    /// Name passed to the app in `LISTEN_FDNAMES`.
    pub name: String,
    /// Address to bind.
    pub addr: ListenAddr,
}

/// A bad `--listen` value.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not of the form `name=addr`.
    #[error("expected name=addr (e.g. http=0.0.0.0:8080 or admin=unix:/run/a.sock), got {0:?}")]
    Form(String),
    /// The name is not usable in LISTEN_FDNAMES.
    #[error("socket name {0:?} must be 1-255 chars of [A-Za-z0-9._-]")]
    Name(String),
    /// The address does not parse.
    #[error("bad address {0:?}: {1}")]
    Addr(String, String),
}

impl FromStr for ListenSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (name, addr) = s
            .split_once('=')
            .ok_or_else(|| SpecError::Form(s.to_owned()))?;
        if name.is_empty()
            || name.len() > 255
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(SpecError::Name(name.to_owned()));
        }
        let addr = if let Some(p) = addr.strip_prefix("unix:") {
            if p.is_empty() || p.len() > 100 {
                return Err(SpecError::Addr(addr.to_owned(), "unix path length".into()));
            }
            ListenAddr::Unix(PathBuf::from(p))
        } else {
            ListenAddr::Tcp(addr.parse().map_err(|e: std::net::AddrParseError| {
                SpecError::Addr(addr.to_owned(), e.to_string())
            })?)
        };
        Ok(ListenSpec {
            name: name.to_owned(),
            addr,
        })
    }
}

/// Binds and listens, blocking mode (as systemd passes sockets), close-on-exec.
/// TCP gets SO_REUSEADDR (so a TIME_WAIT does not block a pod restart) but never SO_REUSEPORT:
/// a second bind of the same port must fail, there is one socket per address.
pub fn bind_listener(addr: &ListenAddr, backlog: i32) -> io::Result<OwnedFd> {
    let backlog = Backlog::new(backlog).map_err(io::Error::from)?;
    match addr {
        ListenAddr::Tcp(sa) => {
            let fam = if sa.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd = socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            match sa {
                SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(*v4))?,
                SocketAddr::V6(v6) => bind(fd.as_raw_fd(), &SockaddrIn6::from(*v6))?,
            }
            listen(&fd, backlog)?;
            Ok(fd)
        }
        ListenAddr::Unix(path) => {
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            // A stale file from a dead pod would make bind fail; only a socket file is removed.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                }
            }
            bind(fd.as_raw_fd(), &UnixAddr::new(path.as_path())?)?;
            // The pod's user only (clients in the pod run as the same user or group).
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
            listen(&fd, backlog)?;
            Ok(fd)
        }
    }
}

/// The address a listener is bound to, in [`ListenAddr`] display form.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<String> {
    let ss: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    if let Some(v4) = ss.as_sockaddr_in() {
        return Ok(SocketAddr::from(std::net::SocketAddrV4::from(*v4)).to_string());
    }
    if let Some(v6) = ss.as_sockaddr_in6() {
        return Ok(SocketAddr::from(std::net::SocketAddrV6::from(*v6)).to_string());
    }
    if let Some(un) = ss.as_unix_addr() {
        if let Some(p) = un.path() {
            return Ok(format!("unix:{}", p.display()));
        }
        return Ok("unix:(unnamed)".into());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "unknown socket family",
    ))
}

/// Whether the socket is a listening stream socket (SO_ACCEPTCONN).
pub fn is_listening(fd: BorrowedFd<'_>) -> bool {
    getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false)
}

/// Whether an adopted descriptor matches the spec: a listening socket bound where the spec says
/// (port 0 in the spec matches any port of the same IP).
pub fn matches_spec(fd: BorrowedFd<'_>, spec: &ListenAddr) -> bool {
    if !is_listening(fd) {
        return false;
    }
    let Ok(actual) = local_addr(fd) else {
        return false;
    };
    match spec {
        ListenAddr::Tcp(sa) if sa.port() == 0 => actual
            .parse::<SocketAddr>()
            .map(|a| a.ip() == sa.ip())
            .unwrap_or(false),
        other => actual == other.to_string(),
    }
}

/// A listener the sidecar holds.
#[derive(Debug)]
pub struct Held {
    /// Name (LISTEN_FDNAMES).
    pub name: String,
    /// The spec it was bound from.
    pub spec: ListenAddr,
    /// The bound address (resolves port 0).
    pub bound: String,
    /// The socket itself.
    pub fd: OwnedFd,
    /// Whether it was adopted from a launcher after a sidecar restart (vs. bound by us).
    pub adopted: bool,
}

impl Held {
    /// Binds a fresh listener for `spec`.
    pub fn bind(spec: &ListenSpec, backlog: i32) -> io::Result<Held> {
        let fd = bind_listener(&spec.addr, backlog)?;
        let bound = local_addr(fd.as_fd())?;
        Ok(Held {
            name: spec.name.clone(),
            spec: spec.addr.clone(),
            bound,
            fd,
            adopted: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s: ListenSpec = "http=127.0.0.1:8080".parse().unwrap();
        assert_eq!(s.addr, ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap()));
        let s: ListenSpec = "adm=unix:/tmp/x.sock".parse().unwrap();
        assert_eq!(s.addr, ListenAddr::Unix("/tmp/x.sock".into()));
        assert!("noequals".parse::<ListenSpec>().is_err());
        assert!("bad name=127.0.0.1:1".parse::<ListenSpec>().is_err());
        assert!("a=notanaddr".parse::<ListenSpec>().is_err());
        assert!("a:b=127.0.0.1:1".parse::<ListenSpec>().is_err());
    }

    #[test]
    fn binds_once_and_matches() {
        let spec: ListenSpec = "http=127.0.0.1:0".parse().unwrap();
        let held = Held::bind(&spec, 16).unwrap();
        assert!(is_listening(held.fd.as_fd()));
        assert!(matches_spec(held.fd.as_fd(), &spec.addr));
        // The exact port cannot be bound a second time: one socket per address.
        let again: ListenSpec = format!("http={}", held.bound).parse().unwrap();
        assert!(Held::bind(&again, 16).is_err());
        assert!(!matches_spec(
            held.fd.as_fd(),
            &ListenAddr::Tcp("127.0.0.2:0".parse().unwrap())
        ));
    }
}
