//! The HTTP figures of one release gateway: bookings, the catalog against a hello-world hyper
//! server, the waiting room's joins and admissions, and bookings under siege.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api_types::BookingBody;
use api_types::NewConcertBody;
use api_types::WaitingRoomBody;
use bytes::Bytes;
use domain::money::Money;
use fred::prelude::KeysInterface;
use http_body_util::Full;
use hyper::Request;
use loadtest::abuse;
use loadtest::pressure::{self, Load, Outcome};
use loadtest::services::{Launch, Service, free_port, sibling};
use redis_store::keys::RoomKey;
use serde_json::Value;
use uuid::Uuid;

use crate::redis_limit::RedisLimit;
use crate::settings::{ADMIN_TOKEN, Run, Settings};

/// A tier the benchmark books, as large as a tier may be (a million), so that it does not sell out.
#[derive(Debug, Clone)]
pub(crate) struct Tier {
    pub id: Uuid,
    pub price: Money,
}

/// Three tiers: one per booking run (guests, signed in, at a fixed rate), so that each run has a
/// million tickets of its own.
pub(crate) async fn create_tiers(gateway: SocketAddr) -> anyhow::Result<[Tier; 3]> {
    let response = reqwest::Client::new()
        .post(format!("http://{gateway}/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&NewConcertBody::new(
            "Bench Arena",
            "Bench Hall",
            "2099-01-01T20:00:00Z".parse()?,
            &[
                ("Floor", Money::new(rust_decimal::Decimal::TEN)?, 1_000_000),
                ("Stands", Money::new(rust_decimal::Decimal::TEN)?, 1_000_000),
                (
                    "Balcony",
                    Money::new(rust_decimal::Decimal::TEN)?,
                    1_000_000,
                ),
            ],
        ))
        .send()
        .await?;
    let concert = answer(response, 201, "creating the bench concert").await?;
    let tier = |index: usize| -> anyhow::Result<Tier> {
        let tier = &concert["ticketTiers"][index];
        Ok(Tier {
            id: tier["id"].as_str().context("tier without id")?.parse()?,
            price: tier["price"].to_string().parse()?,
        })
    };
    Ok([tier(0)?, tier(1)?, tier(2)?])
}

/// The JSON body of `response`, which `what` expects answered `expected`.
async fn answer(response: reqwest::Response, expected: u16, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await?;
    if status != expected {
        bail!("{what} answered {status}: {body}");
    }
    Ok(body)
}

pub(crate) fn get(host: SocketAddr, path: &'static str) -> pressure::MakeRequest {
    Arc::new(move |_| {
        Request::get(path)
            .header("host", host.to_string())
            .body(Full::default())
            .unwrap_or_default()
    })
}

/// A new guest booking for every `n`: distinct buyer and idempotency key; `run` keeps runs apart.
pub(crate) fn book(host: SocketAddr, tier: &Tier, run: &'static str) -> pressure::MakeRequest {
    let tier = tier.clone();
    Arc::new(move |n| {
        booking_request(
            host,
            &tier,
            &format!("{run}{n}@bench.example"),
            &format!("{run}-{n}"),
            None,
        )
    })
}

/// A new booking for every `n` by the customer `email`, signed in with `access`: the gateway
/// verifies the access token of each.
fn book_signed_in(
    host: SocketAddr,
    tier: &Tier,
    email: &'static str,
    access: &str,
) -> pressure::MakeRequest {
    let tier = tier.clone();
    let bearer = format!("Bearer {access}");
    Arc::new(move |n| booking_request(host, &tier, email, &format!("signed-in-{n}"), Some(&bearer)))
}

fn booking_request(
    host: SocketAddr,
    tier: &Tier,
    email: &str,
    key: &str,
    authorization: Option<&str>,
) -> Request<Full<Bytes>> {
    let body = BookingBody::new(tier.id.into(), email, 1, tier.price, key)
        .ok()
        .and_then(|booking| serde_json::to_vec(&booking).ok())
        .unwrap_or_default();
    let mut request = Request::post("/api/bookings")
        .header("host", host.to_string())
        .header("content-type", "application/json");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// Signs `email` in as a customer does, on `gateway` of `run`: a link asked for, its token read
/// from the mail in the outbox, spent for a session. The session's access token.
async fn access_token(gateway: SocketAddr, run: &Run, email: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let asked = client
        .post(format!("http://{gateway}/api/auth/links"))
        .json(&serde_json::json!({ "email": email }))
        .send()
        .await?;
    if asked.status() != 202 {
        bail!("asking for a sign-in link answered {}", asked.status());
    }
    let db = sqlx::PgPool::connect(&run.isolated.names.database_url).await?;
    let link = testkit::sql::signin_link_token(&db, email).await;
    db.close().await;
    let signed_in = client
        .post(format!("http://{gateway}/api/auth/sessions"))
        .json(&serde_json::json!({ "token": link }))
        .send()
        .await?;
    let grant = answer(signed_in, 201, "signing in").await?;
    Ok(grant["accessToken"]
        .as_str()
        .context("a grant without accessToken")?
        .to_owned())
}

/// The waiting room the bench joins admits this many a second.
pub(crate) const ADMIT_PER_SECOND: u32 = 1_000;
/// How long the admission rate is watched for.
pub(crate) const ADMISSION_WINDOW: Duration = Duration::from_secs(5);

/// A concert of one tier sold through a waiting room admitting `admit_per_second`, on sale now.
pub(crate) async fn create_room(
    gateway: SocketAddr,
    admit_per_second: u32,
) -> anyhow::Result<Uuid> {
    let body = NewConcertBody {
        waiting_room: Some(WaitingRoomBody { admit_per_second }),
        ..NewConcertBody::new(
            "Bench Queue",
            "Bench Hall",
            "2099-01-01T20:00:00Z".parse()?,
            &[("Floor", Money::new(rust_decimal::Decimal::TEN)?, 1_000_000)],
        )
    };
    let response = reqwest::Client::new()
        .post(format!("http://{gateway}/api/admin/concerts"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await?;
    let concert = answer(response, 201, "creating the waiting-room concert").await?;
    Ok(concert["id"]
        .as_str()
        .context("concert without id")?
        .parse()?)
}

/// A new place in `concert`'s waiting room for every request: one person (email) each.
pub(crate) fn join(host: SocketAddr, concert: Uuid) -> pressure::MakeRequest {
    Arc::new(move |n| {
        Request::post(format!("/api/concerts/{concert}/queue"))
            .header("host", host.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"{{"userEmail":"fan{n}@queue.example"}}"#
            ))))
            .unwrap_or_default()
    })
}

/// Admissions per second of `concert`'s waiting room over [`ADMISSION_WINDOW`], as Redis counts
/// them.
pub(crate) async fn admission_rate(run: &Run, concert: Uuid) -> anyhow::Result<f64> {
    let shard = run.keys.shard_for_new_concert(concert.into());
    let key = run.keys.queue(shard, concert.into(), RoomKey::Admitted);
    let before: u64 = run.redis.get(&key).await?;
    let started = std::time::Instant::now();
    tokio::time::sleep(ADMISSION_WINDOW).await;
    let after: u64 = run.redis.get(&key).await?;
    Ok((after - before) as f64 / started.elapsed().as_secs_f64())
}

#[derive(Debug)]
pub(crate) struct HttpFigures {
    pub hello: Outcome,
    pub catalog: Outcome,
    pub booking_max: Outcome,
    /// As `booking_max`, by one customer signed in: an access token verified per booking.
    pub booking_signed_in: Outcome,
    pub join_max: Outcome,
    /// Admissions per second measured of a room admitting [`ADMIT_PER_SECOND`].
    pub admission: f64,
    pub booking_half: Outcome,
    /// The same run, with the siege of [`SIEGE`] under way.
    pub booking_besieged: Outcome,
    pub half_rate: f64,
}

/// Hostile clients beside the booking load: silent sockets, bodies that never finish, and
/// 90 dashboards a second each over its own window.
pub(crate) const SIEGE: abuse::Siege = abuse::Siege {
    silent_sockets: 2_000,
    slow_bodies: 500,
    dashboards_per_second: 90,
};

pub(crate) async fn http_figures(
    settings: &Settings,
    run: &Run,
    redis: &RedisLimit,
) -> anyhow::Result<(HttpFigures, Tier)> {
    let duration = Duration::from_secs(settings.seconds);
    let closed = |target, request| Load {
        target,
        connections: settings.connections,
        duration,
        rate: None,
        request,
    };

    let hello_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let hello = Service::start(Launch {
        program: &sibling("hello")?,
        args: &[hello_addr.to_string()],
        env: &[],
        addr: hello_addr,
        ready: None,
    })
    .await?;
    println!("bench: hello-world hyper server, {} s", settings.seconds);
    let hello_outcome = pressure::run(closed(hello_addr, get(hello_addr, "/"))).await;
    hello.stop().await?;

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let gateway = Service::start(Launch::http(
        &sibling("gateway")?,
        &run.gateway_env(settings, addr, true),
        addr,
        "/api/health/ready",
    ))
    .await?;
    let [floor, stands, balcony] = create_tiers(addr).await?;
    println!("bench: GET /api/concerts, {} s", settings.seconds);
    let catalog = pressure::run(closed(addr, get(addr, "/api/concerts"))).await;
    println!(
        "bench: POST /api/bookings as fast as answered, {} s",
        settings.seconds
    );
    let booking_max = pressure::run(closed(addr, book(addr, &floor, "max"))).await;
    // One customer for the whole run: MAX_TICKETS_PER_CUSTOMER is off for the bench.
    let customer = "signed-in@bench.example";
    let access = access_token(addr, run, customer).await?;
    println!(
        "bench: POST /api/bookings signed in, as fast as answered, {} s",
        settings.seconds
    );
    let booking_signed_in = pressure::run(closed(
        addr,
        book_signed_in(addr, &balcony, customer, &access),
    ))
    .await;
    let room = create_room(addr, ADMIT_PER_SECOND).await?;
    println!(
        "bench: POST /api/concerts/{{id}}/queue as fast as answered, {} s",
        settings.seconds
    );
    let join_max = pressure::run(closed(addr, join(addr, room))).await;
    println!(
        "bench: the waiting room's admissions at {ADMIT_PER_SECOND}/s, {} s",
        ADMISSION_WINDOW.as_secs()
    );
    let admission = admission_rate(run, room).await?;
    let half_rate = redis.per_second() / 2.0;
    println!(
        "bench: POST /api/bookings at {half_rate:.0}/s, {} s",
        settings.seconds
    );
    let at_half = |run: &'static str| Load {
        target: addr,
        connections: settings.connections * 4,
        duration,
        rate: Some(half_rate),
        request: book(addr, &stands, run),
    };
    let booking_half = pressure::run(at_half("half")).await;
    println!(
        "bench: POST /api/bookings at {half_rate:.0}/s besieged ({SIEGE:?}), {} s",
        settings.seconds
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let siege = tokio::spawn(abuse::run(addr, SIEGE, stop.clone()));
    // The siege takes hold (sockets open, pool busy) before the bookings start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let booking_besieged = pressure::run(at_half("besieged")).await;
    stop.cancel();
    let tally = siege.await?;
    println!(
        "bench: the siege had {} sockets closed by the gateway and {} dashboards answered",
        tally.closed.load(std::sync::atomic::Ordering::Relaxed),
        tally.dashboards.load(std::sync::atomic::Ordering::Relaxed)
    );
    gateway.stop().await?;
    Ok((
        HttpFigures {
            hello: hello_outcome,
            catalog,
            booking_max,
            booking_signed_in,
            join_max,
            admission,
            booking_half,
            booking_besieged,
            half_rate,
        },
        floor,
    ))
}
