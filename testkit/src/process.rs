//! The project's binaries as processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{signal, wait_for_port};

/// A binary of the workspace, built beside the running test binary (`target/<profile>/`).
pub(crate) fn binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test binary");
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile.join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo build --bins` first (make test does)",
        path.display()
    );
    path
}

#[derive(Debug)]
pub struct Process {
    program: PathBuf,
    env: Vec<(String, String)>,
    /// The most file descriptors it may open, when lowered.
    open_files: Option<u32>,
    /// Answers connections once the process is up.
    port: u16,
    child: Option<Child>,
}

impl Process {
    /// Starts the workspace binary `name` with `env` and waits until `port` accepts connections.
    pub fn start(name: &str, env: Vec<(String, String)>, port: u16) -> Self {
        Self::start_limited(name, env, port, None)
    }

    /// [`Process::start`] with at most `open_files` file descriptors (`prlimit`), as a process at
    /// its limit under a connection flood.
    pub fn start_limited(
        name: &str,
        env: Vec<(String, String)>,
        port: u16,
        open_files: Option<u32>,
    ) -> Self {
        let mut process = Self {
            program: binary(name),
            env,
            open_files,
            port,
            child: None,
        };
        process.restart();
        process
    }

    pub fn restart(&mut self) {
        let logs = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let mut command = match self.open_files {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(logs)
            .spawn()
            .expect("the binary runs");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(30)),
            "{} did not start",
            self.program.display()
        );
    }

    /// `SIGKILL`: no shutdown of any kind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGTERM`, then waits for it to exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), "-TERM");
        child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
