//! The benchmark's established-tool variant: HAProxy (Debian's 2.6) in master-worker mode with
//! `expose-fd listeners`, reloaded seamlessly (SIGUSR2 to the master: the new worker takes the
//! listening sockets over the stats socket, the old one finishes its connections). The backend
//! is a demo app that stays up: what is swapped is the proxy process itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::bench::{BenchConfig, Row, Swapper, free_port, measure, spawn_bound_app, stop_child};

/// A located `haproxy` binary.
pub struct Haproxy {
    bin: PathBuf,
}

struct Reloader {
    master: Child,
    cli: PathBuf,
}

/// Workers listed by the master CLI's `show proc`: (current, old).
async fn show_proc(cli: &Path) -> Result<(Vec<u32>, Vec<u32>), String> {
    let mut s = tokio::net::UnixStream::connect(cli)
        .await
        .map_err(|e| format!("master CLI: {e}"))?;
    s.write_all(b"show proc\n")
        .await
        .map_err(|e| e.to_string())?;
    // The answer ends with the "# programs" section; the CLI may keep the connection open.
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    loop {
        if String::from_utf8_lossy(&raw).contains("# programs") || Instant::now() > deadline {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(_) => {}
        }
    }
    let out = String::from_utf8_lossy(&raw).into_owned();
    let (mut cur, mut old, mut section) = (Vec::new(), Vec::new(), 0);
    for l in out.lines() {
        if l.starts_with("# workers") {
            section = 1;
        } else if l.starts_with("# old workers") {
            section = 2;
        } else if l.starts_with('#') {
            section = if section == 0 { 0 } else { 3 };
        } else if let Some(pid) = l
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok())
        {
            match section {
                1 if l.contains("worker") => cur.push(pid),
                2 => old.push(pid),
                _ => {}
            }
        }
    }
    Ok((cur, old))
}

impl Swapper for Reloader {
    async fn swap(&mut self, _i: u32) -> Result<(), String> {
        let (before, _) = show_proc(&self.cli).await?;
        let pid = self.master.id().ok_or("master gone")?;
        nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGUSR2)
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        // Done when a new worker runs and no old worker is left.
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Ok((cur, old)) = show_proc(&self.cli).await
                && !cur.is_empty()
                && cur.iter().all(|p| !before.contains(p))
                && old.is_empty()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("reload not finished within 20s".into());
            }
        }
    }
}

impl Haproxy {
    /// Finds `haproxy` on PATH or in /usr/sbin.
    pub fn find() -> Option<Haproxy> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from));
        dirs.into_iter()
            .map(|d| d.join("haproxy"))
            .find(|p| p.is_file())
            .map(|bin| Haproxy { bin })
    }

    /// Runs the variant.
    pub async fn bench(&self, cfg: &BenchConfig, dir: &Path) -> Result<Row, String> {
        let backend = SocketAddr::from(([127, 0, 0, 1], free_port().map_err(|e| e.to_string())?));
        let front = SocketAddr::from(([127, 0, 0, 1], free_port().map_err(|e| e.to_string())?));
        let mut app = spawn_bound_app(&cfg.agent, dir, backend, "v1", false).await?;
        let admin = dir.join("haproxy-admin.sock");
        let cli = dir.join("haproxy-master.sock");
        let conf = dir.join("haproxy.cfg");
        let text = format!(
            "global\n  master-worker\n  nbthread 1\n  maxconn 8192\n  stats socket {admin} mode 600 level admin expose-fd listeners\n\
             defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  timeout http-keep-alive 10s\n\
             frontend fe\n  bind {front}\n  default_backend be\n\
             backend be\n  server s1 {backend}\n",
            admin = admin.display()
        );
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let version = std::process::Command::new(&self.bin)
            .arg("-v")
            .output()
            .map(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                // "HAProxy version 2.6.12-1+deb12u4 2026/…": keep name and version.
                let words: Vec<&str> = text.split_whitespace().take(3).collect();
                format!(
                    "{} {}",
                    words.first().unwrap_or(&""),
                    words.get(2).unwrap_or(&"")
                )
            })
            .unwrap_or_default();
        let master = Command::new(&self.bin)
            .arg("-W")
            .arg("-db")
            .arg("-f")
            .arg(&conf)
            .arg("-S")
            .arg(&cli)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn haproxy: {e}"))?;
        let mut r = Reloader { master, cli };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok((cur, _)) = show_proc(&r.cli).await
                && !cur.is_empty()
                && tokio::net::TcpStream::connect(front).await.is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                stop_child(&mut app, Duration::from_secs(5)).await;
                return Err("haproxy did not start".into());
            }
        }
        let mut row = measure("HAProxy seamless reload", front, cfg, &mut r).await;
        let extra = format!("{version}; the swap replaces the proxy, backend stays");
        row.note = if row.note.is_empty() {
            extra
        } else {
            format!("{extra}; {}", row.note)
        };
        stop_child(&mut r.master, Duration::from_secs(10)).await;
        stop_child(&mut app, Duration::from_secs(10)).await;
        Ok(row)
    }
}
