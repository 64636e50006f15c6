//! The settler binary: bad configuration exits 2 naming the variable; `settler audit` checks the
//! books and the audit log's chain.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::settler::Harness;

/// Runs the settler binary with `env`, killing it should it still run after 20 s.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_settler"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("settler runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("settler {args:?} with {env:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_bad_variable_is_named_and_exits_2() {
    for (name, value) in [
        ("SETTLER_METRICS_ADDR", "nowhere"),
        ("PAYMENT_LATENCY_MS", "800-200"),
        ("PAYMENT_FAILURE_RATE", "1.5"),
        ("SETTLER_CONCURRENCY", "0"),
        ("SETTLER_BATCH_SIZE", "lots"),
        ("SETTLER_CLAIM_IDLE_MS", "-5"),
        ("SETTLER_MAX_DELIVERIES", "0"),
        ("SETTLER_CONSUMER", "has space"),
        ("REDIS_SHARDS", "300"),
        ("DATABASE_URL", "mysql://x"),
    ] {
        let output = run(&[], &[(name, value)]);
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    assert_eq!(
        run(&["frobnicate"], &[]).status.code(),
        Some(2),
        "unknown command"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_prints_the_books_and_says_whether_they_balance() {
    let harness = Harness::start(10).await;
    harness.book(4).await;
    let (settler, _) = harness.settler("books", false).await;
    harness.drain(&settler).await;
    let env = [
        ("DATABASE_URL", harness.backends.database_url.as_str()),
        ("REDIS_URL", harness.backends.redis_url.as_str()),
        ("KEY_PREFIX", harness.backends.key_prefix.as_str()),
        ("REDIS_SHARDS", "2"),
        ("RUST_LOG", "warn"),
    ];

    let balanced = tokio::task::block_in_place(|| run(&["audit"], &env));
    let stdout = String::from_utf8_lossy(&balanced.stdout);
    assert_eq!(balanced.status.code(), Some(0), "{stdout}");
    let row = format!(
        "{}  {:>5}  {:>6}  {:>9}  {:>7}  {:>9}  {:>5}",
        harness.tier, harness.shard, 10, 6, 0, 4, 0
    );
    assert!(stdout.contains(&row), "{stdout}");
    assert!(stdout.contains("1 tiers, 2 shards, 0 problems"), "{stdout}");
    assert!(
        stdout.contains("audit log: 1 entries, the chain is intact"),
        "{stdout}"
    );

    let state = &harness.gateway_state;
    let _: i64 = fred::prelude::KeysInterface::incr_by(
        &state.redis,
        state.keys.stock(harness.shard, harness.tier.into()),
        3,
    )
    .await
    .expect("tampered");
    let drifted = tokio::task::block_in_place(|| run(&["audit"], &env));
    let stdout = String::from_utf8_lossy(&drifted.stdout);
    assert_eq!(drifted.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("problem: tier"), "{stdout}");
    assert!(stdout.contains("drift -3"), "{stdout}");
    assert!(stdout.contains("1 tiers, 2 shards, 1 problems"), "{stdout}");

    // The log's one entry (the concert's creation) changed where the triggers were bypassed.
    for statement in [
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        "UPDATE audit_log SET actor_id = 'someone else'",
    ] {
        sqlx::query(statement)
            .execute(&state.db)
            .await
            .expect("tampered");
    }
    let rewritten = tokio::task::block_in_place(|| run(&["audit"], &env));
    let stdout = String::from_utf8_lossy(&rewritten.stdout);
    assert_eq!(rewritten.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("its hash does not match its content"),
        "{stdout}"
    );
    assert!(stdout.contains("1 tiers, 2 shards, 2 problems"), "{stdout}");
}
