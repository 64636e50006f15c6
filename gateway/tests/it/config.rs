//! A bad configuration value is named and the process exits with status 2.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_bad_variable_is_named_and_exits_2() {
    let cases = [
        ("GATEWAY_ADDR", "not-an-address"),
        ("REDIS_URL", "http://nope"),
        ("DATABASE_URL", "mysql://x"),
        ("KEY_PREFIX", "{bad}"),
        ("REDIS_SHARDS", "0"),
        ("SEED_DEMO", "maybe"),
        ("MAX_TICKETS_PER_CUSTOMER", "-1"),
        ("ADMIN_TOKEN", "short"),
        ("REDIS_TIMEOUT_MS", "0"),
        ("REDIS_MIN_REPLICAS", "-1"),
        ("REDIS_WAIT_MS", "0"),
        ("RUST_LOG", "[[["),
        ("WEB_DIR", "/no/such/app"),
    ];
    for (name, value) in cases {
        exits_2_naming(name, &[(name, value)]);
    }
    // Only the two together are wrong: a wait for replicas no Redis command outlives.
    exits_2_naming(
        "REDIS_WAIT_MS",
        &[
            ("REDIS_MIN_REPLICAS", "1"),
            ("REDIS_WAIT_MS", "500"),
            ("REDIS_TIMEOUT_MS", "500"),
        ],
    );
}

/// A weak secret stops the start, and what is printed names the variable and the rule, never the
/// value.
#[test]
fn a_weak_secret_is_refused_without_being_printed() {
    let long_but_uniform = "a".repeat(40);
    let whitespace = " ".repeat(40);
    let repeated = "abcabcabcabcabcabcabcabcabcabcabcabc";
    let spaced = "correct horse battery staple 0123456789";
    for name in ["ADMIN_TOKEN", "ADMISSION_SECRET"] {
        for value in [
            "short-secret-value",
            &long_but_uniform,
            &whitespace,
            repeated,
            spaced,
        ] {
            let printed = exits_2_naming(name, &[(name, value)]);
            if !value.trim().is_empty() {
                assert!(!printed.contains(value), "{name} echoed: {printed}");
            }
        }
    }
}

/// Starts the gateway with `env` and expects exit status 2 and `name` in what it printed, which
/// it returns.
fn exits_2_naming(name: &str, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gateway runs");
    // A value wrongly accepted would start a server: stop it rather than hang the suite.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{env:?} was accepted: the gateway started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("stderr");
    assert_eq!(status.code(), Some(2), "{env:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains(name), "{name}: {stderr}");
    stderr
}
