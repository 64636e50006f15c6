//! The goose load test; see the crate README.

use api_types::headers::IDEMPOTENT_REPLAYED;
use std::sync::{Mutex, OnceLock};

use api_types::BookingBody;
use api_types::NewConcertBody;
use domain::money::Money;
use goose::goose::{GooseMethod, GooseResponse};
use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use rand::Rng;
use serde_json::Value;
use tokio::sync::OnceCell;
use uuid::Uuid;

/// The concerts this run books, created once by whichever user starts first.
static SETUP: OnceCell<Setup> = OnceCell::const_new();
/// Rush bookings accepted, by id: never more than the rush tier's stock, but for those declined
/// (a decline gives its ticket back to be sold again).
static RUSH_ACCEPTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static RUSH_STOCK: OnceLock<u32> = OnceLock::new();

/// Tickets in each arena tier: enough that the book scenario never sells out.
const ARENA_STOCK: u32 = 1_000_000;

#[derive(Debug, Clone)]
struct Tier {
    id: String,
    concert_id: String,
    price: Money,
}

#[derive(Debug, Clone)]
struct Setup {
    /// Three large tiers at 100, 50 and 10.
    arena: Vec<Tier>,
    /// One small tier for the rush.
    rush: Tier,
}

fn failed(error: impl Into<String>) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(error.into()))
}

async fn json_body(
    goose: GooseResponse,
) -> Result<(GooseRequestMetric, u16, Value), Box<TransactionError>> {
    let response = goose.response.map_err(|error| failed(error.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|error| failed(error.to_string()))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((goose.request, status, body))
}

/// Sends `body` as a booking named `name` for the report.
async fn post_booking(
    user: &mut GooseUser,
    name: &'static str,
    body: &Value,
) -> Result<GooseResponse, Box<TransactionError>> {
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/bookings")?
        .json(body);
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/api/bookings")
        .name(name)
        .set_request_builder(builder)
        .build();
    user.request(request).await
}

fn booking(tier: &Tier, quantity: u8, key: &str) -> Result<Value, Box<TransactionError>> {
    let email = format!("{}@loadtest.example", Uuid::new_v4().simple());
    let id = tier
        .id
        .parse()
        .map_err(|_| failed("a tier id that is not a UUID"))?;
    let body = BookingBody::new(id, &email, quantity, tier.price, key).map_err(failed)?;
    serde_json::to_value(body).map_err(|error| failed(error.to_string()))
}

/// Creates a concert through the admin API; its tiers as `(name, price, total)`.
async fn create_concert(
    user: &mut GooseUser,
    name: &str,
    tiers: &[(&str, Money, u32)],
) -> Result<Vec<Tier>, Box<TransactionError>> {
    let token = std::env::var("ADMIN_TOKEN").map_err(|_| failed("ADMIN_TOKEN is not set"))?;
    let date = "2099-01-01T20:00:00Z"
        .parse()
        .map_err(|_| failed("a bad date"))?;
    let body = NewConcertBody::new(name, "Load Hall", date, tiers);
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/admin/concerts")?
        .bearer_auth(token)
        .json(&body);
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/api/admin/concerts")
        .name("setup")
        .set_request_builder(builder)
        .build();
    let (_, status, concert) = json_body(user.request(request).await?).await?;
    if status != 201 {
        return Err(failed(format!(
            "creating {name} answered {status}: {concert}"
        )));
    }
    Ok(concert["ticketTiers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tier| {
            Some(Tier {
                id: tier["id"].as_str()?.to_owned(),
                concert_id: tier["concertId"].as_str()?.to_owned(),
                price: tier["price"].to_string().parse().ok()?,
            })
        })
        .collect())
}

fn dollars(amount: u32) -> Money {
    Money::new(rust_decimal::Decimal::from(amount)).unwrap_or(Money::ZERO)
}

/// Creates the run's concerts, once.
async fn start(user: &mut GooseUser) -> TransactionResult {
    SETUP
        .get_or_try_init(|| async {
            let stock = *RUSH_STOCK.get_or_init(|| 100);
            let arena = create_concert(
                user,
                "Load test arena",
                &[
                    ("VIP", dollars(100), ARENA_STOCK),
                    ("Front Row", dollars(50), ARENA_STOCK),
                    ("General Admission", dollars(10), ARENA_STOCK),
                ],
            )
            .await?;
            let rush = create_concert(user, "Load test rush", &[("Rush", dollars(25), stock)])
                .await?
                .pop()
                .ok_or_else(|| failed("the rush concert has no tier"))?;
            Ok::<_, Box<TransactionError>>(Setup { arena, rush })
        })
        .await?;
    Ok(())
}

fn setup() -> Result<&'static Setup, Box<TransactionError>> {
    SETUP
        .get()
        .ok_or_else(|| failed("the run's concerts were not created"))
}

async fn browse(user: &mut GooseUser) -> TransactionResult {
    let goose = user.get_named("/api/concerts", "catalog").await?;
    let (mut request, status, body) = json_body(goose).await?;
    if status != 200 || body["concerts"].as_array().is_none() {
        return user.set_failure(
            &format!("catalog answered {status}"),
            &mut request,
            None,
            None,
        );
    }
    Ok(())
}

/// A new buyer books 1-4 tickets of a random tier: accepted, or sold out.
async fn book(user: &mut GooseUser) -> TransactionResult {
    let arena = &setup()?.arena;
    let body = {
        let mut rng = rand::rng();
        // Most buy general admission, few VIP.
        let tier = &arena[[0, 1, 1, 2, 2, 2, 2][rng.random_range(0..7)] % arena.len()];
        booking(tier, rng.random_range(1..=4), &Uuid::new_v4().to_string())?
    };
    let (mut request, status, response) =
        json_body(post_booking(user, "book", &body).await?).await?;
    match status {
        202 if response["booking"]["status"] == "pending" => Ok(()),
        409 if response["code"] == "TicketTierOutOfStock" => user.set_success(&mut request),
        _ => user.set_failure(
            &format!("booking answered {status}: {response}"),
            &mut request,
            None,
            None,
        ),
    }
}

/// Thousands of buyers for a small tier: each accepted booking is counted.
async fn rush(user: &mut GooseUser) -> TransactionResult {
    let body = booking(&setup()?.rush, 1, &Uuid::new_v4().to_string())?;
    let (mut request, status, response) =
        json_body(post_booking(user, "rush", &body).await?).await?;
    match status {
        202 => {
            let id = response["booking"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            rush_accepted().push(id);
            Ok(())
        }
        409 if response["code"] == "TicketTierOutOfStock" => user.set_success(&mut request),
        _ => user.set_failure(
            &format!("rush booking answered {status}: {response}"),
            &mut request,
            None,
            None,
        ),
    }
}

/// A booking retried with its key answers with the same booking, marked as a replay.
async fn replay(user: &mut GooseUser) -> TransactionResult {
    let arena = &setup()?.arena;
    let body = booking(
        &arena[rand::rng().random_range(0..arena.len())],
        1,
        &Uuid::new_v4().to_string(),
    )?;
    let (mut first_request, first_status, first) =
        json_body(post_booking(user, "replay first", &body).await?).await?;
    if first_status != 202 {
        return user.set_failure(
            &format!("replay's first booking answered {first_status}"),
            &mut first_request,
            None,
            None,
        );
    }
    let goose = post_booking(user, "replay again", &body).await?;
    let replayed = goose
        .response
        .as_ref()
        .map(|response| {
            response
                .headers()
                .get(IDEMPOTENT_REPLAYED)
                .is_some_and(|v| v == "true")
        })
        .unwrap_or(false);
    let (mut request, status, again) = json_body(goose).await?;
    if status == 202 && replayed && again["booking"]["id"] == first["booking"]["id"] {
        return Ok(());
    }
    user.set_failure(
        &format!("the replay answered {status} (replayed: {replayed})"),
        &mut request,
        None,
        None,
    )
}

fn rush_accepted() -> std::sync::MutexGuard<'static, Vec<String>> {
    RUSH_ACCEPTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The JSON body `url` answers with.
async fn get_json(client: &reqwest::Client, url: String) -> Result<Value, String> {
    client
        .get(url)
        .send()
        .await
        .map_err(|error| error.to_string())?
        .json()
        .await
        .map_err(|error| error.to_string())
}

/// Accepted bookings whose payment was declined, as the gateway tells them now.
async fn declined(client: &reqwest::Client, host: &str, ids: &[String]) -> Result<usize, String> {
    let mut declined = 0;
    for id in ids {
        let answer = get_json(client, format!("{host}/api/bookings/{id}")).await?;
        if answer["booking"]["status"] == "failed" {
            declined += 1;
        }
    }
    Ok(declined)
}

/// After the run: the rush tier was not oversold, and (unless `EXPECT_FAULTS` says the run's
/// dependencies were being killed) nothing failed.
///
/// A settler running during the load declines some payments and gives those tickets back, so
/// more than the stock may be accepted. A decline is written before its ticket returns, so reading
/// the stock first and the statuses after gives `declined` at least the tickets returned by then:
/// `accepted - declined + available <= stock` holds unless a ticket was sold twice.
async fn verify(host: &str, metrics: &GooseMetrics) -> Result<(), String> {
    let failures: usize = metrics
        .requests
        .values()
        .map(|request| request.fail_count)
        .sum();
    let server_errors: usize = metrics
        .requests
        .values()
        .flat_map(|request| request.status_code_counts.iter())
        .filter(|(status, _)| **status >= 500)
        .map(|(_, count)| *count)
        .sum();
    let accepted = rush_accepted().clone();
    let stock = RUSH_STOCK.get().copied().unwrap_or(0) as usize;
    let host = host.trim_end_matches('/');
    if let Some(Setup { rush: tier, .. }) = SETUP.get() {
        let client = reqwest::Client::new();
        let concert = get_json(&client, format!("{host}/api/concerts/{}", tier.concert_id)).await?;
        let available = concert["ticketTiers"][0]["availableQuantity"]
            .as_i64()
            .unwrap_or(-1);
        let declined = declined(&client, host, &accepted).await?;
        println!(
            "rush: {} of {stock} tickets accepted, {declined} declined, {available} available; \
             {failures} failed requests, {server_errors} answered 5xx",
            accepted.len()
        );
        if available < 0 || accepted.len() - declined + available as usize > stock {
            return Err(format!(
                "rush tier oversold: {} accepted, {declined} declined, {available} still available of {stock}",
                accepted.len()
            ));
        }
    }
    let faults_expected = std::env::var("EXPECT_FAULTS").is_ok_and(|value| value == "true");
    if (failures > 0 || server_errors > 0) && !faults_expected {
        return Err(format!(
            "{failures} requests failed, {server_errors} answered 5xx"
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let stock = std::env::var("RUSH_STOCK")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(100);
    let _ = RUSH_STOCK.set(stock);
    let attack = async {
        GooseAttack::initialize()?
            .register_scenario(
                scenario!("browse")
                    .set_weight(6)?
                    .register_transaction(transaction!(start).set_on_start())
                    .register_transaction(transaction!(browse)),
            )
            .register_scenario(
                scenario!("book")
                    .set_weight(3)?
                    .register_transaction(transaction!(start).set_on_start())
                    .register_transaction(transaction!(book)),
            )
            .register_scenario(
                scenario!("rush")
                    .set_weight(3)?
                    .register_transaction(transaction!(start).set_on_start())
                    .register_transaction(transaction!(rush)),
            )
            .register_scenario(
                scenario!("replay")
                    .set_weight(1)?
                    .register_transaction(transaction!(start).set_on_start())
                    .register_transaction(transaction!(replay)),
            )
            .set_default(GooseDefault::Host, "http://127.0.0.1:8000")?
            // Expected refusals (sold out) are marked successful after the fact, which goose's
            // error table would still list; failures are counted and reported below instead.
            .set_default(GooseDefault::NoErrorSummary, true)?
            .execute()
            .await
    };
    let metrics = match attack.await {
        Ok(metrics) => metrics,
        Err(error) => {
            eprintln!("loadtest: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let host = metrics
        .hosts
        .iter()
        .next()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8000".to_owned());
    match verify(&host, &metrics).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("loadtest: {problem}");
            std::process::ExitCode::FAILURE
        }
    }
}
