//! `POST /api/auth/links`: the same answer for every email, a link recorded (hashed) and its mail
//! queued in one transaction, and at most 5 a minute per email and per client address, counted
//! alike by concurrent requests.

use futures::future::join_all;
use serde_json::{Value, json};

use testkit::gateway::{TestApp, retry_after, spawn_app_with, test_config};

async fn app() -> TestApp {
    spawn_app_with(gateway::GatewayConfig {
        // Tests speak for many clients through one proxy.
        trusted_proxies: vec!["127.0.0.1/32".parse().expect("a network")],
        ..test_config()
    })
    .await
}

async fn ask(app: &TestApp, email: &str, from: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/links"))
        .header("X-Forwarded-For", from)
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("answered")
}

async fn queued(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM signin_links), (SELECT count(*) FROM mail_outbox WHERE kind = 'signin')",
    )
    .fetch_one(&app.state.db)
    .await
    .expect("counts")
}

#[tokio::test]
async fn every_email_gets_the_same_answer() {
    let app = app().await;
    let tiers = app.create_concert(&[(10.0, 5)]).await.1;
    let booked = app
        .book(&testkit::gateway::booking_body(
            &tiers[0],
            1,
            "known@example.com",
            "k1",
        ))
        .await;
    assert_eq!(booked.status(), 202);

    let known = ask(&app, "known@example.com", "192.0.2.1").await;
    let unknown = ask(&app, "nobody@example.com", "192.0.2.1").await;
    assert_eq!(
        (known.status().as_u16(), unknown.status().as_u16()),
        (202, 202)
    );
    let known: Value = known.json().await.expect("json");
    let unknown: Value = unknown.json().await.expect("json");
    assert_eq!(known, unknown);
    assert_eq!(queued(&app).await, (2, 2));
}

#[tokio::test]
async fn five_links_a_minute_per_email_however_it_is_typed_and_from_wherever() {
    let app = app().await;
    // Ten at the same instant, from ten addresses: the limit counts each of them.
    let answers = join_all((0..10).map(|n| {
        let app = &app;
        let email = if n % 2 == 0 {
            "Fan@Example.com"
        } else {
            " fan@example.COM"
        };
        async move { ask(app, email, &format!("192.0.2.{}", n + 1)).await }
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
    let refused = answers
        .iter()
        .find(|a| a.status() == 429)
        .expect("a refusal");
    let wait = retry_after(refused);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        queued(&app).await,
        (5, 5),
        "a refused request recorded something"
    );

    // Another email is its own count.
    assert_eq!(
        ask(&app, "other@example.com", "192.0.2.99").await.status(),
        202
    );
}

#[tokio::test]
async fn five_links_a_minute_per_client_address() {
    let app = app().await;
    for n in 0..5 {
        let answer = ask(&app, &format!("fan{n}@example.com"), "198.51.100.7").await;
        assert_eq!(answer.status(), 202);
    }
    let refused = ask(&app, "fan5@example.com", "198.51.100.7").await;
    assert_eq!(refused.status(), 429);
    let problem: Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "RateLimited");
    assert_eq!(
        ask(&app, "fan5@example.com", "198.51.100.8").await.status(),
        202
    );
    assert_eq!(queued(&app).await, (6, 6));
}

#[tokio::test]
async fn bad_emails_are_refused_and_record_nothing() {
    let app = app().await;
    let long = format!("{}@example.com", "a".repeat(250));
    for email in [
        json!(null),
        json!(42),
        json!(""),
        json!("not an email"),
        json!("x@example.com'; DROP TABLE signin_links; --"),
        json!(long),
        json!("fan\u{0000}@example.com"),
    ] {
        let answer = app
            .client
            .post(app.url("/api/auth/links"))
            .json(&json!({ "email": email }))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 400, "{email}");
        let problem: Value = answer.json().await.expect("json");
        assert_eq!(problem["errors"][0]["field"], "email", "{problem}");
    }
    let missing = app
        .client
        .post(app.url("/api/auth/links"))
        .json(&json!({}))
        .send()
        .await
        .expect("answered");
    assert_eq!(missing.status(), 400);
    assert_eq!(queued(&app).await, (0, 0));
}
