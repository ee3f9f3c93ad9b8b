//! File-descriptor plumbing, and the only `unsafe` of the agent: SCM_RIGHTS send and receive,
//! descriptor flags, placing descriptors at 3.. in a child, and taking systemd-style
//! `LISTEN_FDS` in an app.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg, sockopt,
};

/// The kernel's limit on descriptors in one SCM_RIGHTS message (SCM_MAX_FD).
pub const MAX_FDS_PER_MSG: usize = 253;

/// The first descriptor number handed to an app, as systemd does.
pub const LISTEN_FDS_START: RawFd = 3;

/// Sends `bytes` with `fds` attached as one SCM_RIGHTS control message (at most
/// [`MAX_FDS_PER_MSG`]). Returns how many bytes the kernel took; the descriptors travel with
/// the first byte, so a partial write still delivered all of them.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_MSG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many fds for one message",
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [io::IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)
}

/// Receives bytes into `buf`; descriptors that came with them are pushed to `fds_out`, already
/// close-on-exec (MSG_CMSG_CLOEXEC), so none can leak into a child by accident. Returns the byte
/// count (0 = end of stream).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds_out: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    // Room for a full SCM_RIGHTS message: never truncated, so no received fd goes unseen.
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_MSG]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let bytes = msg.bytes;
    let cmsgs = msg.cmsgs().map_err(io::Error::from)?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(list) = c {
            for fd in list {
                // SAFETY: the kernel just installed `fd` in this process for us (SCM_RIGHTS);
                // nothing else refers to it, so taking ownership is sound and closes it on drop.
                fds_out.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok(bytes)
}

/// The peer's (uid, pid) of a connected Unix socket (SO_PEERCRED).
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<(u32, i32)> {
    let c =
        nix::sys::socket::getsockopt(&sock, sockopt::PeerCredentials).map_err(io::Error::from)?;
    Ok((c.uid(), c.pid()))
}

/// Sets or clears O_NONBLOCK. Beware: the flag lives on the open file description, which every
/// holder of a shared socket shares.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    let new = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if new != flags {
        fcntl(fd, FcntlArg::F_SETFL(new)).map_err(io::Error::from)?;
    }
    Ok(())
}

/// Whether O_NONBLOCK is set on the descriptor's open file description.
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    Ok(flags.contains(OFlag::O_NONBLOCK))
}

/// Whether close-on-exec is set on this descriptor.
pub fn is_cloexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).map_err(io::Error::from)?);
    Ok(flags.contains(FdFlag::FD_CLOEXEC))
}

/// Sets close-on-exec on this descriptor.
pub fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    Ok(())
}

/// Duplicates `fd` to a close-on-exec descriptor numbered at least `min`.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    let new = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(min)).map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that only we own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Arranges for `cmd`'s child to receive `fds` as descriptors 3, 4, … (without close-on-exec),
/// and nothing else beyond stdio: every other descriptor of this process is close-on-exec.
/// The returned descriptors must stay alive until the child is spawned.
pub fn pass_fds_to_child(
    cmd: &mut std::process::Command,
    fds: &[BorrowedFd<'_>],
) -> io::Result<Vec<OwnedFd>> {
    // Move every source above the target range first, so that dup2 onto 3.. never overwrites a
    // source that is still needed (the sources may themselves be 3, 4, …).
    let min = (LISTEN_FDS_START + fds.len() as RawFd + 1).max(64);
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|f| dup_at_least(*f, min))
        .collect::<io::Result<_>>()?;
    let raw: Vec<RawFd> = high.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure runs in the child between fork and exec; it only calls dup2(2), which
    // is async-signal-safe, and allocates nothing (`raw` was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            for (i, src) in raw.iter().enumerate() {
                // dup2 gives the target no FD_CLOEXEC: exactly these fds survive the exec.
                if nix::libc::dup2(*src, LISTEN_FDS_START + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(high)
}

/// Closes every descriptor numbered `first` or above (close_range(2)); used by the exec shim so
/// the app inherits only stdio and its sockets.
pub fn close_fds_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; the caller (the shim, single-threaded right
    // before execvp) owns no live Rust object that refers to a descriptor >= `first`.
    let rc = unsafe { nix::libc::close_range(first as u32, u32::MAX, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Errors taking sockets the systemd way.
#[derive(Debug, thiserror::Error)]
pub enum ListenFdsError {
    /// `LISTEN_PID` names another process: the variables were not meant for us.
    #[error("LISTEN_PID={0} is not this process ({1})")]
    WrongPid(String, u32),
    /// A variable could not be parsed.
    #[error("bad {0}: {1:?}")]
    Bad(&'static str, String),
    /// A passed descriptor is not open.
    #[error("fd {0} passed in LISTEN_FDS is not open: {1}")]
    NotOpen(RawFd, io::Error),
}

/// Takes the descriptors passed the systemd way (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`),
/// marks them close-on-exec and returns them with their names (`unknown` when unnamed), like
/// `sd_listen_fds_with_names(unset_environment=1)`. No variables: an empty list.
pub fn take_listen_fds() -> Result<Vec<(String, OwnedFd)>, ListenFdsError> {
    let Ok(pid) = std::env::var("LISTEN_PID") else {
        return Ok(Vec::new());
    };
    let me = std::process::id();
    if pid.trim() != me.to_string() {
        return Err(ListenFdsError::WrongPid(pid, me));
    }
    let n_s = std::env::var("LISTEN_FDS").unwrap_or_default();
    let n: usize = n_s
        .trim()
        .parse()
        .map_err(|_| ListenFdsError::Bad("LISTEN_FDS", n_s.clone()))?;
    if n > 4096 {
        return Err(ListenFdsError::Bad("LISTEN_FDS", n_s));
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|s| s.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    // SAFETY (edition 2024 marks env mutation unsafe): called at start-up of the app, before
    // any other thread reads the environment, as sd_listen_fds(1) does.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let raw = LISTEN_FDS_START + i as RawFd;
        // Check it is open before taking ownership.
        if let Err(e) = fcntl(
            // SAFETY: only borrowed for the duration of this F_GETFD probe.
            unsafe { BorrowedFd::borrow_raw(raw) },
            FcntlArg::F_GETFD,
        ) {
            return Err(ListenFdsError::NotOpen(raw, io::Error::from(e)));
        }
        // SAFETY: the launcher passed this descriptor to us per the LISTEN_FDS protocol and no
        // other object in this process owns it; it is open (checked just above).
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        set_cloexec(fd.as_fd()).map_err(|e| ListenFdsError::NotOpen(raw, e))?;
        let name = names
            .get(i)
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned());
        out.push((name, fd));
    }
    Ok(out)
}

/// Number of open descriptors of process `pid` (from /proc), for leak checks.
pub fn count_open_fds(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Whether an error is "try again" (EAGAIN/EWOULDBLOCK).
pub fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(Errno::EAGAIN as i32)
}
