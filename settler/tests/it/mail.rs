//! The mail outbox against a real SMTP server (aiosmtpd): a sign-in link asked of a real gateway
//! arrives once, with the Message-ID fixed when it was queued, and Postgres keeps only its token's
//! hash; a server that is down holds every mail until it is back; a sender killed with -9 again
//! and again while delivering loses no mail, and what it sends again carries the same Message-ID.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use testkit::gateway::{TestApp, spawn_app};
use testkit::settler::Harness;
use testkit::{Isolated, MailCatcher, Process, free_port};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use pg_store::outbox::{self, Mail};
use settler::mail::{Delivery, Mailer, SENDERS};

async fn ask_link(app: &TestApp, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/links"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("answered")
}

/// The outbox's senders over `smtp`, running until the token is cancelled.
fn senders(db: &PgPool, smtp: &str) -> CancellationToken {
    let mailer = Arc::new(Mailer {
        db: db.clone(),
        delivery: Delivery::smtp(smtp).expect("an SMTP URL"),
        from: "Tickets <tickets@localhost>".parse().expect("a mailbox"),
    });
    let shutdown = CancellationToken::new();
    for _ in 0..SENDERS {
        tokio::spawn(Arc::clone(&mailer).run(shutdown.clone()));
    }
    shutdown
}

#[tokio::test]
async fn a_sign_in_link_is_mailed_once_and_only_its_hash_is_kept() {
    let catcher = MailCatcher::start();
    let app = spawn_app().await;
    let db = &app.state.db;
    let _senders = senders(db, &catcher.url()).drop_guard();

    let answer = ask_link(&app, "  Ada@Example.COM ").await;
    assert_eq!(answer.status(), 202);
    let mails = catcher.wait_for(1, Duration::from_secs(15)).await;
    let mail = &mails[0];
    assert_eq!(mail.to, "ada@example.com");
    assert_eq!(mail.subject, "Your sign-in link");
    assert!(
        mail.message_id.starts_with('<') && mail.message_id.ends_with(".signin@127.0.0.1>"),
        "{mail:?}"
    );
    let token = mail
        .body
        .split("http://127.0.0.1:8000/signin?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the link in the mail");
    assert_eq!(token.len(), 64, "{mail:?}");

    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT token_hash FROM signin_links WHERE email = 'ada@example.com'")
            .fetch_all(db)
            .await
            .expect("links");
    assert_eq!(stored, vec![Sha256::digest(token.as_bytes()).to_vec()]);
    let queued: (String, bool) = sqlx::query_as(
        "SELECT message_id, sent_at IS NOT NULL FROM mail_outbox WHERE recipient = 'ada@example.com'",
    )
    .fetch_one(db)
    .await
    .expect("the outbox row");
    assert_eq!(queued, (mail.message_id.clone(), true));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(catcher.mails().len(), 1, "a second copy arrived");
}

#[tokio::test]
async fn mails_wait_out_a_mail_server_that_is_down() {
    let mut catcher = MailCatcher::start();
    catcher.stop();
    let app = spawn_app().await;
    let db = &app.state.db;
    let _senders = senders(db, &catcher.url()).drop_guard();
    for n in 0..3 {
        assert_eq!(
            ask_link(&app, &format!("fan{n}@example.com"))
                .await
                .status(),
            202
        );
    }

    // Every mail tried and refused at least once while the server is away.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let tried: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM mail_outbox WHERE attempts > 0 AND sent_at IS NULL",
        )
        .fetch_one(db)
        .await
        .expect("count");
        if tried == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{tried} of 3 mails tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(catcher.mails().is_empty());

    catcher.restart();
    let mails = catcher.wait_for(3, Duration::from_secs(30)).await;
    let queued: HashSet<String> = sqlx::query_scalar("SELECT message_id FROM mail_outbox")
        .fetch_all(db)
        .await
        .expect("message ids")
        .into_iter()
        .collect();
    let received: HashSet<String> = mails.iter().map(|mail| mail.message_id.clone()).collect();
    assert_eq!(received, queued);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(catcher.mails().len(), 3, "a mail arrived twice");
    assert_eq!(outbox::unsent(db).await.expect("unsent"), 0);
}

#[tokio::test]
async fn a_sender_killed_while_delivering_loses_no_mail_and_repeats_none_under_a_new_id() {
    const MAILS: usize = 300;
    const KILLS: usize = 5;
    let catcher = MailCatcher::start();
    let isolated = Isolated::new(2);
    let names = &isolated.names;
    let port = free_port();
    let env = [
        ("REDIS_URL", names.redis_url.clone()),
        ("DATABASE_URL", names.database_url.clone()),
        ("KEY_PREFIX", names.key_prefix.clone()),
        ("REDIS_SHARDS", names.redis_shards.to_string()),
        ("SETTLER_METRICS_ADDR", format!("127.0.0.1:{port}")),
        ("SMTP_URL", catcher.url()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .map(|(name, value)| (name.to_owned(), value));
    // The settler makes and migrates the database before it listens.
    let mut settler = Process::start("settler", env.to_vec(), port);
    let db = pg_store::connect(&names.database_url, 2)
        .await
        .expect("postgres");
    let mut tx = db.begin().await.expect("a transaction");
    for n in 0..MAILS {
        let mail = Mail {
            cause: Uuid::now_v7(),
            kind: "test",
            recipient: format!("fan{n}@example.com"),
            subject: format!("mail {n}"),
            body: format!("mail number {n}\n"),
        };
        outbox::enqueue(&mut tx, &mail, "tickets.test")
            .await
            .expect("queued");
    }
    tx.commit().await.expect("committed");

    for _ in 0..KILLS {
        let pause = rand::rng().random_range(50..250);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        settler.kill();
        settler.restart();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while outbox::unsent(&db).await.expect("unsent") > 0 {
        assert!(
            Instant::now() < deadline,
            "mails still unsent after a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settler.terminate();

    let queued: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT subject, message_id FROM mail_outbox")
            .fetch_all(&db)
            .await
            .expect("the outbox")
            .into_iter()
            .collect();
    let mails = catcher.mails();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for mail in &mails {
        assert_eq!(
            queued.get(&mail.subject),
            Some(&mail.message_id),
            "{} arrived under another Message-ID",
            mail.subject
        );
        *copies.entry(mail.message_id.as_str()).or_default() += 1;
    }
    assert_eq!(copies.len(), MAILS, "mails lost");
    // A kill can cut off at most the mails then in hand, one per sender.
    let repeated = mails.len() - MAILS;
    println!("{MAILS} mails, {KILLS} kills: {repeated} delivered again (same Message-ID)");
    assert!(repeated <= KILLS * SENDERS, "{repeated} repeats");
}

#[tokio::test]
async fn a_guest_signs_in_through_the_mail_and_finds_the_booking_made_before() {
    let catcher = MailCatcher::start();
    let harness = Harness::start(10).await;
    let app = &harness.app;
    let _senders = senders(&app.state.db, &catcher.url()).drop_guard();
    let body = testkit::gateway::booking_body(
        &testkit::gateway::TestTier {
            id: harness.tier,
            price: harness.price,
            total: 10,
        },
        2,
        "grace@example.com",
        "guest-1",
    );
    let booked = app.book(&body).await;
    assert_eq!(booked.status(), 202);
    let (settler, _) = harness.settler("s", false).await;
    assert_eq!(harness.drain(&settler).await, 1);

    assert_eq!(ask_link(app, "Grace@Example.com").await.status(), 202);
    let mails = catcher.wait_for(1, Duration::from_secs(15)).await;
    let token = mails[0]
        .body
        .split("/signin?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the link in the mail");
    let grant: serde_json::Value = app
        .client
        .post(app.url("/api/auth/sessions"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("the grant");
    let access = grant["accessToken"].as_str().expect("an access token");
    let mine: serde_json::Value = app
        .client
        .get(app.url("/api/me/bookings"))
        .bearer_auth(access)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let bookings = mine["bookings"].as_array().expect("bookings");
    assert_eq!(bookings.len(), 1, "{mine}");
    assert_eq!(bookings[0]["status"], "confirmed");
    assert_eq!(bookings[0]["quantity"], 2);
    assert_eq!(bookings[0]["idempotencyKey"], "guest-1");
}
