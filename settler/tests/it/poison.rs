//! Entries that can never be written (DESIGN invariant 6): each is resolved as failed once, its
//! stock returned, recorded once in `dead_letters`, acknowledged and trimmed behind, and none
//! holds back its batch, its stream or a restarted settler's recovery.

use std::sync::Arc;

use chrono::Utc;
use domain::money::Currency;
use domain::record::{Booking, Packed};
use domain::values::{Email, IdempotencyKey, Quantity};
use fred::prelude::{HashesInterface, LuaInterface};
use fred::types::Value;
use redis_store::scripts::reserve::{Reservation, ReserveScript};
use redis_store::scripts::trim::Mode;
use serde_json::json;
use uuid::Uuid;

use testkit::settler::{Harness, settler_config};

/// Reserves `quantity` tickets through the reservation script itself, but with the packed
/// booking `doctor` rewrote: what a gateway with a weaker check, or a foreign writer, could put
/// in the stream. Returns the booking id.
async fn reserve_doctored(
    harness: &Harness,
    quantity: u8,
    doctor: impl Fn(&mut serde_json::Value),
) -> Uuid {
    let state = &harness.gateway_state;
    let booking = Booking {
        id: domain::ids::BookingId::new(harness.shard),
        ticket_tier_id: harness.tier.into(),
        concert_id: harness.concert.into(),
        user_email: Email::parse("poison@example.com").expect("email"),
        quantity: Quantity::new(i64::from(quantity)).expect("quantity"),
        total_price: "12.50"
            .parse::<domain::money::Money>()
            .expect("money")
            .times(u32::from(quantity))
            .expect("total"),
        currency: Currency::Usd,
        created_at: Utc::now(),
        idempotency_key: IdempotencyKey::parse(&Uuid::new_v4().to_string()).expect("key"),
    };
    let packed = Packed {
        booking,
        held_until: Utc::now().timestamp() + 86_400,
        customer_limit: 0,
    };
    let (mut keys, mut args) = ReserveScript::keys_and_args(
        &state.keys,
        harness.shard,
        Reservation {
            packed: &packed,
            admission: None,
        },
    );
    // ARGV 2 is the packed booking.
    let mut json: serde_json::Value = serde_json::from_str(&args[1]).expect("json");
    doctor(&mut json);
    args[1] = json.to_string();
    // The keys follow the doctored booking, as they would had it been written so.
    let concert: Uuid = json["booking"]["concertId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("concert");
    let email = json["booking"]["userEmail"].as_str().expect("email");
    keys[2] = state
        .keys
        .idempotency(harness.shard, concert.into(), "doctored");
    keys[4] = state.keys.held(harness.shard, concert.into());
    args[5] = email.to_owned();
    let script = ReserveScript::default();
    script.load(state.redis.next()).await.expect("loaded");
    let reply: Vec<Value> = state
        .redis
        .next()
        .evalsha(script.sha1(), keys, args)
        .await
        .expect("reserved");
    assert_eq!(reply[0].as_i64(), Some(0), "accepted");
    packed.booking.id.into()
}

async fn dead_letters(harness: &Harness) -> Vec<(Option<Uuid>, String)> {
    testkit::sql::dead_letters(&harness.gateway_state.db).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_postgres_can_never_hold_are_failed_once_and_hold_nothing_back() {
    let harness = Harness::start(50).await;
    let before = harness.book(3).await;
    // 316 characters once it reached Postgres: its length check refuses the row.
    let unreadable = reserve_doctored(&harness, 5, |json| {
        json["booking"]["userEmail"] = json!(format!("{}@example.com", "i\u{307}".repeat(150)));
    })
    .await;
    // Reads back, is charged, and then refused by a foreign key: no such concert.
    let refused = reserve_doctored(&harness, 5, |json| {
        json["booking"]["concertId"] = json!(Uuid::new_v4());
    })
    .await;
    let after = harness.book(3).await;
    assert_eq!(harness.available().await, Some(50 - 3 - 5 - 5 - 3));

    let (settler, provider) = harness.settler("settles", false).await;
    assert_eq!(harness.drain(&settler).await, 8, "every entry resolved");

    assert_eq!(harness.rows().await.get("confirmed"), Some(&6));
    for id in before.iter().chain(&after) {
        assert_eq!(harness.status(*id).await, "confirmed");
    }
    assert_eq!(harness.status(refused).await, "failed");
    // The unreadable one has no shape the API could show; Redis holds its final status.
    let state = &harness.gateway_state;
    let status: Option<String> = state
        .redis
        .hget(state.keys.booking(harness.shard, unreadable.into()), "s")
        .await
        .expect("read");
    assert_eq!(status.as_deref(), Some("failed"));
    assert_eq!(
        harness.available().await,
        Some(44),
        "both gave their tickets back"
    );
    assert_eq!(harness.pending().await, 0);
    assert_eq!(
        provider.refunded_charges(),
        1,
        "the charged one was refunded"
    );
    let letters = dead_letters(&harness).await;
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].0, Some(unreadable));
    assert_eq!(letters[1].0, Some(refused));
    assert!(letters[1].1.contains("refused by postgres"), "{letters:?}");

    // Trimmed behind like any settled entry, and never delivered again.
    let depth = settler
        .consumer
        .trim(harness.shard, Mode::Trim)
        .await
        .expect("trimmed");
    assert_eq!(depth.pending, 0);
    assert!(depth.length <= 1, "{depth:?}");
    assert_eq!(harness.drain(&settler).await, 0);
    assert_eq!(settler.reclaim().await, 0);
    assert_eq!(dead_letters(&harness).await.len(), 2, "recorded once");

    // Once Redis forgets the failed booking, Postgres answers for it from the dead letter.
    let _: i64 = state
        .redis
        .hdel(
            state.keys.booking(harness.shard, refused.into()),
            vec!["b", "s", "r"],
        )
        .await
        .expect("forgotten");
    assert_eq!(harness.status(refused).await, "failed");
    let books = settler::audit::run(
        &state.redis,
        &state.db,
        &state.keys,
        std::time::Duration::from_secs(300),
    )
    .await
    .expect("audited");
    assert_eq!(books.problems(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_settler_recovers_past_a_bad_entry() {
    let harness = Harness::start(20).await;
    harness.book(2).await;
    reserve_doctored(&harness, 1, |json| {
        json["booking"]["currency"] = json!("EUR");
    })
    .await;
    harness.book(2).await;
    let (crashed, provider) = harness.settler("same-name", false).await;
    let held = crashed
        .consumer
        .read(harness.shard, 100, false)
        .await
        .expect("read");
    assert_eq!(held.len(), 5, "all read, then the settler died");

    let restarted = harness
        .settler_with(
            settler_config(&harness.backends, "same-name"),
            Arc::clone(&provider),
        )
        .await;
    assert_eq!(restarted.recover_own().await, 5, "past the bad entry");
    assert_eq!(harness.rows().await.get("confirmed"), Some(&4));
    assert_eq!(dead_letters(&harness).await.len(), 1);
    assert_eq!(harness.available().await, Some(16));
    assert_eq!(harness.pending().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_accepts_exactly_what_postgres_stores() {
    let harness = Harness::start(100).await;
    let labels = [
        "b".repeat(63),
        "b".repeat(62),
        "b".repeat(62),
        "b".repeat(62),
    ];
    let longest_email = format!("A@{}", labels.join("."));
    let longest_key = "k".repeat(255);
    let at_the_edge = json!({
        "ticketTierId": harness.tier, "userEmail": longest_email, "quantity": 10,
        "totalPrice": 125, "idempotencyKey": longest_key,
    });
    let response = harness
        .client
        .post(format!("{}/api/bookings", harness.gateway))
        .json(&at_the_edge)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.expect("json");
    let id: Uuid = body["booking"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id");
    for (field, value) in [
        ("userEmail", json!(format!("A{longest_email}"))),
        ("idempotencyKey", json!(format!("k{longest_key}"))),
        ("quantity", json!(11)),
    ] {
        let mut beyond = at_the_edge.clone();
        beyond[field] = value;
        let response = harness
            .client
            .post(format!("{}/api/bookings", harness.gateway))
            .json(&beyond)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 400, "{field}");
    }
    let (settler, _) = harness.settler("edge", false).await;
    assert_eq!(harness.drain(&settler).await, 1);
    assert_eq!(harness.status(id).await, "confirmed", "Postgres took it");
    assert!(dead_letters(&harness).await.is_empty());
}
