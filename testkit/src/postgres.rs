//! A private Postgres server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{TempDir, free_port, wait_for_port};

/// Postgres' server programs (Debian keeps them out of `PATH`).
fn bin(program: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres' server programs in /usr/lib/postgresql (make test installs them)");
    let mut dirs: Vec<PathBuf> = versions
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|dir| dir.join(program).exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .map(|dir| dir.join(program))
        .expect("a Postgres installation with server programs")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `program` as the `postgres` user when running as root (Postgres refuses root).
fn command(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin(program));
        command
    } else {
        Command::new(bin(program))
    }
}

/// Hands `dir` to the user Postgres runs as.
fn own(dir: &Path) {
    if is_root() {
        let owned = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .is_ok_and(|status| status.success());
        assert!(owned, "chown {}", dir.display());
    }
}

/// One cluster made with `initdb` per test run, copied for each server: `initdb` takes seconds.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = TempDir::new("pg-template");
            own(dir.path());
            let made = command("initdb")
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(dir.path().join("data"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            assert!(made, "initdb");
            dir
        })
        .path()
}

#[derive(Debug)]
pub struct PrivatePostgres {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let dir = TempDir::new("pg");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(template().join("data"))
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        assert!(copied, "copying the template cluster");
        own(dir.path());
        let mut postgres = Self {
            port: free_port(),
            dir,
            child: None,
        };
        postgres.restart();
        postgres
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server (again) on its port and data directory.
    pub fn restart(&mut self) {
        let child = command("postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres runs");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(20)),
            "postgres did not start"
        );
        // Listening is not yet accepting sessions: wait until it is ready.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !Command::new(bin("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|status| status.success())
        {
            assert!(std::time::Instant::now() < deadline, "postgres never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once (`SIGKILL` of the server and every backend).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // runuser waits on the postmaster: kill the server and its backends by their data
            // directory, which their command lines name.
            let _ = Command::new("pkill")
                .args(["-KILL", "-f", "--"])
                .arg(self.dir.path().join("data"))
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(self.dir.path().join("data/postmaster.pid"));
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.kill();
    }
}
