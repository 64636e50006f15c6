#![doc = include_str!("../README.md")]

mod cluster;
#[cfg(feature = "apps")]
pub mod gateway;
mod isolation;
mod mail;
mod postgres;
mod process;
mod proxy;
mod redis;
mod sentinel;
#[cfg(feature = "apps")]
pub mod settler;
pub mod sql;

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

pub use cluster::PrivateCluster;
pub use isolation::{Isolated, Names, ScratchDatabase, postgres_server, redis_url};
pub use mail::{MailCatcher, ReceivedMail};
pub use postgres::PrivatePostgres;
pub use process::Process;
pub use proxy::Proxy;
pub use redis::{Persistence, PrivateRedis, delete_keys};
pub use sentinel::PrivateSentinels;
/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Waits until something accepts connections on `port`, at most `patience`.
pub fn wait_for_port(port: u16, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Sends `signal` (`-KILL`, `-STOP`, `-CONT`, `-TERM`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success());
    assert!(sent, "kill {signal} {pid}");
}

/// A directory of its own under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("testkit-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
