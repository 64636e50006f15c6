//! Signing in: a mailed link's token spent once for a session, access tokens that only this
//! deployment's key makes for this audience and time, refresh tokens that rotate and end their
//! session when one is presented twice, signing out; a signed-in booking takes the customer's
//! email; "my bookings" pages stay whole while bookings are written.

use std::collections::HashSet;

use chrono::{Duration as Span, Utc};
use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use domain::record::BookingStatus;
use testkit::gateway::{TestApp, booking_body, spawn_app};
use testkit::sql::{PlantedBooking, plant_booking};

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("answered")
}

async fn get_as(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
}

#[tokio::test]
async fn a_link_signs_in_once_and_refresh_tokens_rotate_until_one_is_reused() {
    let app = spawn_app().await;
    let grant = app.sign_in("Ada@Example.com").await;
    assert_eq!(grant["customer"]["email"], "ada@example.com");
    assert_eq!(grant["expiresIn"], 900);
    let me = get_as(&app, "/api/me", field(&grant, "accessToken")).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["customer"], grant["customer"]);

    // The link is spent.
    let token = app.link_token("ada@example.com").await;
    let again = post(&app, "/api/auth/sessions", json!({ "token": token })).await;
    assert_eq!(again.status(), 401);
    let problem: Value = again.json().await.expect("json");
    assert_eq!(problem["code"], "TokenRefused");

    // Each refresh token works once, and gives the next.
    let first = field(&grant, "refreshToken").to_owned();
    let next = post(&app, "/api/auth/refresh", json!({ "refreshToken": first })).await;
    assert_eq!(next.status(), 200);
    let next: Value = next.json().await.expect("json");
    assert_ne!(next["refreshToken"], grant["refreshToken"]);
    assert_eq!(next["customer"], grant["customer"]);
    let second = field(&next, "refreshToken").to_owned();

    // The spent one presented again (a thief, or the customer after a thief): the session ends,
    // so the newer token stops working too.
    let reused = post(&app, "/api/auth/refresh", json!({ "refreshToken": first })).await;
    assert_eq!(reused.status(), 401);
    let after = post(&app, "/api/auth/refresh", json!({ "refreshToken": second })).await;
    assert_eq!(after.status(), 401);
    let revoked: Option<String> = sqlx::query_scalar("SELECT revoked_because FROM sessions")
        .fetch_one(&app.state.db)
        .await
        .expect("the session");
    assert_eq!(revoked.as_deref(), Some("refresh token reused"));
}

#[tokio::test]
async fn one_refresh_token_presented_at_the_same_instant_rotates_once() {
    let app = spawn_app().await;
    let grant = app.sign_in("racer@example.com").await;
    let token = field(&grant, "refreshToken").to_owned();
    let answers = join_all((0..8).map(|_| {
        post(
            &app,
            "/api/auth/refresh",
            json!({ "refreshToken": token.clone() }),
        )
    }))
    .await;
    let rotated = answers.iter().filter(|a| a.status() == 200).count();
    let refused = answers.iter().filter(|a| a.status() == 401).count();
    assert_eq!((rotated, refused), (1, 7));
    // The losers presented a spent token: the session is over.
    let open: bool = sqlx::query_scalar("SELECT revoked_at IS NULL FROM sessions")
        .fetch_one(&app.state.db)
        .await
        .expect("the session");
    assert!(!open);
}

#[tokio::test]
async fn signing_out_ends_the_refresh_token() {
    let app = spawn_app().await;
    let grant = app.sign_in("leaver@example.com").await;
    let out = app
        .client
        .delete(app.url("/api/auth/sessions/current"))
        .bearer_auth(field(&grant, "accessToken"))
        .send()
        .await
        .expect("answered");
    assert_eq!(out.status(), 204);
    let refresh = post(
        &app,
        "/api/auth/refresh",
        json!({ "refreshToken": field(&grant, "refreshToken") }),
    )
    .await;
    assert_eq!(refresh.status(), 401);
    let anonymous = app
        .client
        .delete(app.url("/api/auth/sessions/current"))
        .send()
        .await
        .expect("answered");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn expired_unknown_and_malformed_link_tokens_sign_nobody_in() {
    let app = spawn_app().await;
    let asked = post(
        &app,
        "/api/auth/links",
        json!({ "email": "late@example.com" }),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let token = app.link_token("late@example.com").await;
    sqlx::query("UPDATE signin_links SET expires_at = now() - interval '1 second'")
        .execute(&app.state.db)
        .await
        .expect("expired");
    for (body, status) in [
        (json!({ "token": token }), 401),
        (json!({ "token": "0".repeat(64) }), 401),
        (json!({ "token": "" }), 400),
        (json!({ "token": "x".repeat(500) }), 400),
        (json!({ "token": 7 }), 400),
        (json!({}), 400),
    ] {
        let answer = post(&app, "/api/auth/sessions", body.clone()).await;
        assert_eq!(answer.status(), status, "{body}");
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&app.state.db)
        .await
        .expect("count");
    assert_eq!(sessions, 0);
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: Uuid,
    email: &'a str,
    sid: Uuid,
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[tokio::test]
async fn forged_expired_and_foreign_access_tokens_are_refused() {
    let app = spawn_app().await;
    let key = app
        .config
        .auth_signing_key
        .as_ref()
        .expect("the test config sets a key")
        .expose()
        .as_bytes()
        .to_vec();
    let grant = app.sign_in("ada@example.com").await;
    let good = field(&grant, "accessToken");
    let now = Utc::now().timestamp();
    let claims = |iss, aud, exp| Claims {
        sub: Uuid::now_v7(),
        email: "ada@example.com",
        sid: Uuid::now_v7(),
        iss,
        aud,
        iat: now,
        exp,
    };
    let sign = |claims: &Claims<'_>, key: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(key).expect("a key"),
        )
        .expect("signed")
    };
    let mut tampered = good.to_owned();
    tampered.replace_range(tampered.len() - 3.., "AAA");
    let (head, rest) = good.split_once('.').expect("a JWT");
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        rest.split('.').next().expect("claims")
    );
    for (what, token) in [
        (
            "expired",
            sign(&claims("tickets", "tickets-api", now - 60), &key),
        ),
        (
            "another audience",
            sign(&claims("tickets", "elsewhere", now + 600), &key),
        ),
        (
            "another issuer",
            sign(&claims("evil", "tickets-api", now + 600), &key),
        ),
        (
            "another key",
            sign(
                &claims("tickets", "tickets-api", now + 600),
                b"0123456789abcdef0123456789abcdef",
            ),
        ),
        ("a changed signature", tampered),
        ("alg none", unsigned),
        ("a header alone", head.to_owned()),
        ("garbage", "x".repeat(5000)),
    ] {
        let answer = get_as(&app, "/api/me", &token).await;
        assert_eq!(answer.status(), 401, "{what}");
        assert_eq!(
            answer
                .headers()
                .get("www-authenticate")
                .map(reqwest::header::HeaderValue::as_bytes),
            Some(&b"Bearer"[..]),
            "{what}"
        );
    }
    assert_eq!(get_as(&app, "/api/me", good).await.status(), 200);
    let none = app
        .client
        .get(app.url("/api/me"))
        .send()
        .await
        .expect("answered");
    assert_eq!(none.status(), 401);
}

#[tokio::test]
async fn a_signed_in_booking_takes_the_customers_email_and_no_other() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 10)]).await;
    let grant = app.sign_in("ada@example.com").await;
    let access = field(&grant, "accessToken");
    let book_as = |body: Value, token: Option<String>| {
        let app = &app;
        async move {
            let request = app.client.post(app.url("/api/bookings")).json(&body);
            let request = match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            };
            request.send().await.expect("answered")
        }
    };

    let mut without_email = booking_body(&tiers[0], 1, "x@example.com", "k-1");
    without_email
        .as_object_mut()
        .expect("an object")
        .remove("userEmail");
    let booked = book_as(without_email.clone(), Some(access.to_owned())).await;
    assert_eq!(booked.status(), 202);
    let booked: Value = booked.json().await.expect("json");
    assert_eq!(booked["booking"]["userEmail"], "ada@example.com");

    let same = booking_body(&tiers[0], 1, " ADA@example.com", "k-2");
    assert_eq!(book_as(same, Some(access.to_owned())).await.status(), 202);

    let other = book_as(
        booking_body(&tiers[0], 1, "eve@example.com", "k-3"),
        Some(access.to_owned()),
    )
    .await;
    assert_eq!(other.status(), 422);
    let problem: Value = other.json().await.expect("json");
    assert_eq!(problem["code"], "EmailMismatch");

    let forged = book_as(without_email.clone(), Some("forged".to_owned())).await;
    assert_eq!(forged.status(), 401);
    // A guest must still say who books.
    assert_eq!(book_as(without_email, None).await.status(), 400);
    // Guest checkout is as it was.
    let guest = book_as(booking_body(&tiers[0], 1, "guest@example.com", "k-4"), None).await;
    assert_eq!(guest.status(), 202);
    let stock = app.redis_stock(concert, tiers[0].id).await;
    assert_eq!(stock, Some(7), "the refused bookings took tickets");
}

#[tokio::test]
async fn my_bookings_page_newest_first_and_stay_whole_while_bookings_are_written() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 1000)]).await;
    let db = &app.state.db;
    let base = Utc::now();
    let plant = |n: i64, email: &'static str, age: Span| PlantedBooking {
        id: Uuid::now_v7(),
        idempotency_key: Box::leak(format!("k-{email}-{n}").into_boxed_str()),
        tier_id: tiers[0].id,
        concert_id: concert,
        user_email: email,
        quantity: 1,
        total_price: Decimal::TEN,
        status: BookingStatus::Confirmed,
        failure_reason: None,
        created_at: base - age,
        admission_ticket_id: None,
    };
    let mut mine = Vec::new();
    for n in 0..45 {
        // Some at the very same instant: the id orders them.
        let booking = plant(n, "fan@example.com", Span::seconds(1000 - (n / 3) * 10));
        mine.push(booking.id);
        plant_booking(db, booking).await;
        plant_booking(db, plant(n, "other@example.com", Span::seconds(n))).await;
    }
    let grant = app.sign_in("fan@example.com").await;
    let access = field(&grant, "accessToken").to_owned();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page_number = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/me/bookings?limit=10&cursor={cursor}"),
            None => "/api/me/bookings?limit=10".to_owned(),
        };
        let page = get_as(&app, &path, &access).await;
        assert_eq!(page.status(), 200);
        let page: Value = page.json().await.expect("json");
        for booking in page["bookings"].as_array().expect("bookings") {
            assert_eq!(booking["userEmail"], "fan@example.com");
            seen.push((
                field(booking, "createdAt").to_owned(),
                field(booking, "id").parse::<Uuid>().expect("an id"),
            ));
        }
        // Bookings written between pages, newer and as old as those already read.
        plant_booking(
            db,
            plant(100 + page_number, "fan@example.com", Span::zero()),
        )
        .await;
        page_number += 1;
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let ids: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a booking on two pages");
    assert!(
        mine.iter().all(|id| unique.contains(id)),
        "a booking missed"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "not newest first");

    let bad = get_as(&app, "/api/me/bookings?cursor=nope&limit=0", &access).await;
    assert_eq!(bad.status(), 400);
}
