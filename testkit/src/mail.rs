//! A real SMTP server for tests: Python's `aiosmtpd` (installed by `make python-tools` into
//! `target/venv`), storing every mail it takes in a maildir the test reads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port, wait_for_port};

/// One mail as the server took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug)]
pub struct MailCatcher {
    port: u16,
    maildir: TempDir,
    child: Option<Child>,
}

impl MailCatcher {
    pub fn start() -> Self {
        let mut catcher = Self {
            port: free_port(),
            maildir: TempDir::new("maildir"),
            child: None,
        };
        catcher.restart();
        catcher
    }

    /// `SMTP_URL` of this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server: deliveries fail until [`MailCatcher::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and maildir.
    pub fn restart(&mut self) {
        let python = venv_python();
        let logs = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.mailbox())
            .stdout(Stdio::null())
            .stderr(logs)
            .spawn()
            .unwrap_or_else(|error| panic!("{} runs: {error}", python.display()));
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(20)),
            "the SMTP server did not start"
        );
    }

    /// The maildir, which the server makes (with its `new`, `cur` and `tmp`) where none exists.
    fn mailbox(&self) -> PathBuf {
        self.maildir.path().join("mailbox")
    }

    /// Every mail taken so far, in no particular order.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        let Ok(files) = std::fs::read_dir(self.mailbox().join("new")) else {
            return Vec::new();
        };
        files
            .filter_map(Result::ok)
            .filter_map(|file| std::fs::read_to_string(file.path()).ok())
            .map(|text| parse(&text))
            .collect()
    }

    /// The mails once at least `count` have arrived; panics after `patience`.
    pub async fn wait_for(&self, count: usize, patience: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + patience;
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} mails arrived in {patience:?}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailCatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The virtual environment's Python, beside the build's `target/`.
fn venv_python() -> PathBuf {
    let test = std::env::current_exe().expect("the test binary");
    let target = test
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "target"))
        .expect("the test binary runs from target/");
    let python = target.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make python-tools` first (make test does)",
        python.display()
    );
    python
}

/// A mail's headers (unfolded) and its body, decoded when it travelled quoted-printable.
fn parse(text: &str) -> ReceivedMail {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        unfolded
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let body = if header("Content-Transfer-Encoding").eq_ignore_ascii_case("quoted-printable") {
        quoted_printable::decode(body, quoted_printable::ParseMode::Robust)
            .map(|bytes| String::from_utf8_lossy(&bytes).replace("\r\n", "\n"))
            .unwrap_or_else(|_| body.to_owned())
    } else {
        body.to_owned()
    };
    ReceivedMail {
        message_id: header("Message-ID"),
        to: header("To"),
        subject: header("Subject"),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_body_are_read_from_a_stored_mail() {
        let mail = parse(
            "Message-ID: <a.signin@host>\nTo: x@example.com\nSubject: Your\n sign-in link\n\nline\n",
        );
        assert_eq!(mail.message_id, "<a.signin@host>");
        assert_eq!(mail.to, "x@example.com");
        assert_eq!(mail.subject, "Your sign-in link");
        assert_eq!(mail.body, "line\n");
        let encoded =
            parse("Content-Transfer-Encoding: quoted-printable\n\nhttp://x/?token=3Dab=\ncd=0A\n");
        assert_eq!(encoded.body, "http://x/?token=abcd\n\n");
    }
}
