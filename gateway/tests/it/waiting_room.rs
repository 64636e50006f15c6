//! Waiting rooms (DESIGN "Sales windows and the waiting room"): early joiners drawn into a random
//! order, later ones in arrival order, admission at the room's rate across gateways (one of them
//! stopped halfway), every admission booking once, and nothing booked without one.

use api_types::headers::{ADMISSION_TOKEN, X_FORWARDED_FOR};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use api_types::WaitingRoomBody;
use api_types::{NewConcertBody, NewTierBody};
use chrono::{DateTime, Utc};
use fred::prelude::{HashesInterface, KeysInterface};
use futures::future::join_all;
use redis_store::keys::RoomKey;
use serde_json::Value;
use uuid::Uuid;

use domain::record::BookingStatus;
use testkit::delete_keys;
use testkit::gateway::{
    ADMIN_TOKEN, SseReader, TestApp, TestTier, booking_body, counter, spawn_app, spawn_app_with,
};
use testkit::sql::{PlantedBooking, plant_booking};

/// Creates a concert of one tier of `total` tickets at 25.00 with a waiting room admitting
/// `per_second`, its sales opening `opens_in` from now.
pub(crate) async fn create_room(
    app: &TestApp,
    total: u32,
    per_second: u32,
    opens_in: Duration,
) -> (Uuid, TestTier) {
    let body = NewConcertBody {
        sales_open_at: Some(Utc::now() + opens_in),
        waiting_room: Some(WaitingRoomBody {
            admit_per_second: per_second,
        }),
        ticket_tiers: vec![NewTierBody {
            name: "Floor".to_owned(),
            price: "25".parse().expect("money"),
            total_quantity: total,
        }],
        ..NewConcertBody::new(
            "Queue Night",
            "Hall",
            "2099-01-01T20:00:00Z".parse().expect("date"),
            &[],
        )
    };
    let concert = app.post_concert(&body).await;
    assert_eq!(concert["waitingRoom"]["admitPerSecond"], per_second);
    let id = concert["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id");
    let tier = &concert["ticketTiers"][0];
    (
        id,
        TestTier {
            id: tier["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("tier"),
            price: 25.0,
            total,
        },
    )
}

/// Joins `concert`'s room as `who@queue.example`.
pub(crate) async fn join(app: &TestApp, concert: Uuid, who: String) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/api/concerts/{concert}/queue")))
        .json(&serde_json::json!({ "userEmail": format!("{who}@queue.example") }))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Where the ticket of a join's `answer` is read, with its credential: `tail` is `""` for the
/// ticket, `"/events"` for its stream.
fn ticket_path(answer: &Value, tail: &str) -> String {
    let ticket = &answer["queueTicket"];
    let token = ticket["ticketToken"].as_str().expect("ticket token");
    format!("/api/queue/{}{tail}?token={token}", ticket_id(answer))
}

fn ticket_id(answer: &Value) -> Uuid {
    answer["queueTicket"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("ticket id")
}

/// Books one ticket of `tier` as `who@queue.example` under `key`, retrying a 503 with the same
/// key and token as a client should (the machine is shared with the other tests: a reservation
/// may time out).
async fn book_with(
    app: &TestApp,
    tier: &TestTier,
    (who, key): (&str, &str),
    token: Option<&str>,
) -> (u16, Value) {
    for _ in 0..5 {
        let (status, answer) = book_once(app, tier, (who, key), token).await;
        if status != 503 {
            return (status, answer);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    book_once(app, tier, (who, key), token).await
}

async fn book_once(
    app: &TestApp,
    tier: &TestTier,
    (who, key): (&str, &str),
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/api/bookings"))
        .json(&booking_body(tier, 1, &format!("{who}@queue.example"), key));
    if let Some(token) = token {
        request = request.header(ADMISSION_TOKEN, token);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// One of the room's Redis keys.
fn room_key(app: &TestApp, concert: Uuid, what: RoomKey) -> String {
    app.state
        .keys
        .queue(app.shard_of(concert), concert.into(), what)
}

/// Spearman's rank correlation of two equally long lists of distinct ranks.
fn rank_correlation(pairs: &[(u64, u64)]) -> f64 {
    let n = pairs.len() as f64;
    let rank = |values: Vec<u64>| -> HashMap<u64, f64> {
        let mut sorted = values;
        sorted.sort_unstable();
        sorted
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, i as f64))
            .collect()
    };
    let xs = rank(pairs.iter().map(|p| p.0).collect());
    let ys = rank(pairs.iter().map(|p| p.1).collect());
    let squared: f64 = pairs.iter().map(|(x, y)| (xs[x] - ys[y]).powi(2)).sum();
    1.0 - 6.0 * squared / (n * (n * n - 1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_admit_at_the_rate_fairly_and_sell_exactly_the_stock() {
    let first = spawn_app().await;
    let second = spawn_app_with(first.config.clone()).await;
    let gateways = [&first, &second];
    let opens_in = Duration::from_secs(6);
    let (concert, tier) = create_room(&first, 500, 200, opens_in).await;
    let opening = Instant::now() + opens_in;
    // The second gateway learns of the room from Postgres rather than waiting for the catalog
    // message, which a Redis Cluster may deliver late.
    second.state.catalog.merge(
        gateway::catalog::store::catalog(&second.state.db)
            .await
            .expect("catalog"),
    );

    // 2,000 join before sales open, through both gateways, 25 at a time.
    let mut early = Vec::new();
    let mut joiner: HashMap<String, String> = HashMap::new();
    let mut paths: HashMap<String, String> = HashMap::new();
    for batch in (0..2_000).collect::<Vec<u32>>().chunks(25) {
        let joins = batch
            .iter()
            .map(|n| join(gateways[*n as usize % 2], concert, format!("early-{n}")));
        for ((status, answer), n) in join_all(joins).await.into_iter().zip(batch) {
            assert_eq!(status, 201, "{answer}");
            assert!(
                answer["queueTicket"]["position"].is_null(),
                "no place before the draw"
            );
            early.push(ticket_id(&answer));
            joiner.insert(ticket_id(&answer).to_string(), format!("early-{n}"));
            paths.insert(ticket_id(&answer).to_string(), ticket_path(&answer, ""));
        }
    }
    // One place per email.
    let (status, again) = join(&second, concert, "early-0".to_owned()).await;
    assert_eq!((status, ticket_id(&again)), (200, early[0]));
    assert!(
        Instant::now() < opening,
        "the early joins took too long to be early"
    );
    tokio::time::sleep(opening - Instant::now() + Duration::from_millis(300)).await;

    // 1,000 join after opening, one after another, so their order of arrival is known.
    let mut late = Vec::new();
    for n in 0..1_000u32 {
        let (status, answer) = join(gateways[n as usize % 2], concert, format!("late-{n}")).await;
        assert_eq!(status, 201, "{answer}");
        late.push(ticket_id(&answer));
        joiner.insert(ticket_id(&answer).to_string(), format!("late-{n}"));
        paths.insert(ticket_id(&answer).to_string(), ticket_path(&answer, ""));
    }

    // Every fifth admitted person books; the others hold their admission unspent. The admitted
    // count is sampled to measure the rate; the first gateway stops halfway.
    let redis = second.state.redis.next().clone();
    let admitted_key = room_key(&first, concert, RoomKey::Admitted);
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let mut booked = HashSet::new();
    let mut next_to_book = 0usize;
    let mut first = Some(first);
    let started = Instant::now();
    while booked.len() < 500 && started.elapsed() < Duration::from_secs(30) {
        let admitted: u64 = redis.get(&admitted_key).await.expect("redis");
        samples.push((Instant::now(), admitted));
        if started.elapsed() > Duration::from_secs(6)
            && let Some(app) = first.take()
        {
            app.stop().await;
        }
        let expiry: HashMap<String, i64> = redis
            .hgetall(room_key(&second, concert, RoomKey::Expiry))
            .await
            .expect("redis");
        let places: HashMap<String, u64> = redis
            .hgetall(room_key(&second, concert, RoomKey::Places))
            .await
            .map(|places: HashMap<u64, String>| places.into_iter().map(|(p, t)| (t, p)).collect())
            .expect("redis");
        let mut ready: Vec<(u64, String)> = expiry
            .keys()
            .filter_map(|ticket| places.get(ticket).map(|place| (*place, ticket.clone())))
            .filter(|(place, _)| place % 5 == 0 && !booked.contains(place))
            .collect();
        ready.sort();
        // Only the stock's worth of buyers: the 501st would rightly find it gone.
        for (place, ticket) in ready.into_iter().take(500 - booked.len()) {
            let view: Value = second.get_json(&paths[&ticket]).await;
            assert_eq!(view["queueTicket"]["admitted"], true);
            assert_eq!(view["queueTicket"]["position"], 0);
            let token = view["queueTicket"]["admissionToken"]
                .as_str()
                .expect("token")
                .to_owned();
            let who = joiner[&ticket].as_str();
            let (status, answer) = book_with(
                &second,
                &tier,
                (who, &format!("buyer-{place}")),
                Some(&token),
            )
            .await;
            assert_eq!(status, 202, "booking {place} answered {status}: {answer}");
            booked.insert(place);
            next_to_book += 1;
            if next_to_book == 1 {
                // The token books once: another booking with it is refused; the same one replays.
                let (status, answer) = book_with(
                    &second,
                    &tier,
                    (who, &format!("again-{place}")),
                    Some(&token),
                )
                .await;
                assert_eq!(
                    (status, answer["code"].as_str()),
                    (403, Some("AdmissionRequired"))
                );
                let (status, _) = book_with(
                    &second,
                    &tier,
                    (who, &format!("buyer-{place}")),
                    Some(&token),
                )
                .await;
                assert_eq!(status, 202, "a replay is a replay");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(booked.len(), 500, "every ticket sold to an admitted buyer");
    assert_eq!(second.redis_stock(concert, tier.id).await, Some(0));
    let (status, answer) = book_with(&second, &tier, ("one-more", "one-more"), None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("AdmissionRequired"))
    );

    // The rate, from the first admission to the last sample before the stock ran out.
    let admitting: Vec<&(Instant, u64)> = samples.iter().filter(|(_, n)| *n > 0).collect();
    let (&(from, at_start), &(to, at_end)) = (admitting[0], admitting[admitting.len() - 1]);
    let rate = (at_end - at_start) as f64 / (to - from).as_secs_f64();
    assert!(
        (190.0..=210.0).contains(&rate),
        "admitted {rate:.1}/s, not 200/s within 5 %"
    );

    // Nobody admitted twice: one expiry per admitted place, each a ticket that joined.
    let admitted: u64 = redis.get(&admitted_key).await.expect("redis");
    let expiry: HashMap<String, i64> = redis
        .hgetall(room_key(&second, concert, RoomKey::Expiry))
        .await
        .expect("redis");
    assert_eq!(expiry.len() as u64, admitted);
    let joined: HashSet<String> = early.iter().chain(&late).map(Uuid::to_string).collect();
    assert!(expiry.keys().all(|ticket| joined.contains(ticket)));

    // The early joiners' places are a shuffle of their arrival; the late ones' their arrival.
    let place_of: HashMap<String, u64> = redis
        .hgetall(room_key(&second, concert, RoomKey::PlaceOf))
        .await
        .expect("redis");
    let mut pairs = Vec::new();
    for ticket in &early {
        let arrival: u64 = redis
            .hget(
                second
                    .state
                    .keys
                    .queue_ticket(second.shard_of(concert), (*ticket).into()),
                "n",
            )
            .await
            .expect("redis");
        pairs.push((arrival, place_of[&ticket.to_string()]));
    }
    let places: HashSet<u64> = pairs.iter().map(|p| p.1).collect();
    assert_eq!(
        places,
        (1..=2_000).collect(),
        "the early joiners hold places 1 to 2,000"
    );
    let rho = rank_correlation(&pairs);
    assert!(
        rho.abs() < 0.1,
        "early places follow arrival (rho {rho:.3})"
    );
    let reversed: Vec<(u64, u64)> = pairs.iter().map(|(a, _)| (*a, 2_001 - *a)).collect();
    assert!(
        rank_correlation(&reversed) < -0.99,
        "the test tells reverse order"
    );
    for (n, ticket) in late.iter().enumerate() {
        let view: Value = second.get_json(&paths[&ticket.to_string()]).await;
        let position = view["queueTicket"]["position"].as_u64().expect("position");
        let expected_place = 2_001 + n as u64;
        match view["queueTicket"]["admitted"].as_bool() {
            Some(true) => assert!(expected_place <= admitted),
            _ => assert_eq!(
                position,
                expected_place - admitted,
                "late joiners queue in arrival order"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_are_missing_forged_or_for_another_concert_book_nothing() {
    let app = spawn_app().await;
    let (concert, tier) = create_room(&app, 10, 1_000, Duration::ZERO).await;
    let (other, _) = create_room(&app, 10, 1_000, Duration::ZERO).await;
    let (_, token) = admitted(&app, other, "elsewhere").await;
    let token = token.as_str();
    for (key, token) in [
        ("none", None),
        ("garbage", Some("not-a-token")),
        ("other-concert", Some(token)),
        ("tampered", Some(&token.replace(".1", ".2") as &str)),
    ] {
        let (status, answer) = book_with(&app, &tier, (key, key), token).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (403, Some("AdmissionRequired")),
            "{key}"
        );
    }
    // A token of this concert books for the email that joined, nobody else.
    let (_, own) = admitted(&app, concert, "holder").await;
    let (status, answer) =
        book_with(&app, &tier, ("someone-else", "someone-else"), Some(&own)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("AdmissionRequired")),
        "another email"
    );
    assert_eq!(
        app.redis_stock(concert, tier.id).await,
        Some(10),
        "nothing taken"
    );
    let (status, answer) = join(&app, Uuid::now_v7(), "nowhere".to_owned()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("ConcertNotFound"))
    );
    let (plain, _) = app.create_concert(&[(10.0, 5)]).await;
    let (status, answer) = join(&app, plain, "plain".to_owned()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("NoWaitingRoom"))
    );
    let missing: Value = app
        .get_json(&format!("/api/queue/{}", Uuid::now_v7()))
        .await;
    assert_eq!(missing["code"], "QueueTicketNotFound");
    // A ticket's id alone reads nothing, nor another ticket's credential.
    let (_, mine) = join(&app, concert, "mine".to_owned()).await;
    let (_, theirs) = join(&app, concert, "theirs".to_owned()).await;
    let other_token = theirs["queueTicket"]["ticketToken"]
        .as_str()
        .expect("token");
    for path in [
        format!("/api/queue/{}", ticket_id(&mine)),
        format!("/api/queue/{}?token={other_token}", ticket_id(&mine)),
        format!("/api/queue/{}/events?token={other_token}", ticket_id(&mine)),
    ] {
        let response = app.client.get(app.url(&path)).send().await.expect("sent");
        assert_eq!(response.status(), 404, "{path}");
    }
    let own: Value = app.get_json(&ticket_path(&mine, "")).await;
    assert_eq!(own["queueTicket"]["id"], mine["queueTicket"]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_room_is_added_and_removed_by_an_update() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 5)]).await;
    let patch = |body: Value| {
        app.client
            .patch(app.url(&format!("/api/admin/concerts/{concert}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let answer: Value = patch(serde_json::json!({"waitingRoom": {"admitPerSecond": 50}}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["waitingRoom"]["admitPerSecond"], 50);
    let (status, _) = book_with(&app, &tiers[0], ("direct", "direct"), None).await;
    assert_eq!(status, 403, "a booking now needs an admission");
    let bad =
        patch(serde_json::json!({"waitingRoom": {"admitPerSecond": 0}, "salesOpenAt": "soon"}))
            .await
            .expect("sent");
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.expect("json");
    assert_eq!(problem["errors"].as_array().map(Vec::len), Some(2));
    let answer: Value = patch(serde_json::json!({"waitingRoom": null}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(answer.get("waitingRoom").is_none());
    let (status, _) = book_with(&app, &tiers[0], ("direct", "direct"), None).await;
    assert_eq!(status, 202, "no waiting room: booked directly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_left_to_expire_are_given_to_the_next_in_line() {
    let config = testkit::gateway::test_config();
    let app = spawn_app_with(gateway::GatewayConfig {
        admission_ttl: Duration::from_secs(1),
        ..config
    })
    .await;
    let (concert, _) = create_room(&app, 100, 2, Duration::ZERO).await;
    for n in 0..40 {
        let (status, _) = join(&app, concert, format!("idle-{n}")).await;
        assert_eq!(status, 201);
    }
    let admitted = || async {
        let admitted: Option<u64> = app
            .state
            .redis
            .get(room_key(&app, concert, RoomKey::Admitted))
            .await
            .expect("redis");
        admitted.unwrap_or(0)
    };
    while admitted().await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let count = admitted().await;
    // The rate alone admits one more every half second (and a tick's worth of slack).
    let by_rate = 2 + (2.0 * first.elapsed().as_secs_f64()).ceil() as u64;
    // Nobody booked: every token admitted more than a second ago expired and its place went on.
    assert!(
        count >= by_rate + 3,
        "{count} admitted in {:?} from the first; the rate alone admits {by_rate}",
        first.elapsed()
    );
    let expired = counter(
        &app.metrics().await,
        &format!("gateway_queue_admissions_expired_total{{concert=\"{concert}\"}}"),
    );
    assert!(expired >= 3.0, "{expired} counted expired");
}

/// Joins `concert`'s room under `key` and waits for the admission: the ticket and its token.
async fn admitted(app: &TestApp, concert: Uuid, key: &str) -> (Uuid, String) {
    let (_, answer) = join(app, concert, key.to_owned()).await;
    let ticket = ticket_id(&answer);
    let mut stream = SseReader::open(app, &ticket_path(&answer, "/events")).await;
    loop {
        let event = stream
            .next()
            .await
            .expect("the stream goes on until admission");
        if event.event == "admitted" {
            let token = event.json()["queueTicket"]["admissionToken"]
                .as_str()
                .expect("token")
                .to_owned();
            assert!(
                stream.next().await.is_none(),
                "the stream ends once admitted"
            );
            return (ticket, token);
        }
        assert_eq!(event.event, "position");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_spent_before_redis_lost_its_data_books_nothing_after() {
    let app = spawn_app().await;
    let (concert, tier) = create_room(&app, 10, 1_000, Duration::ZERO).await;
    let (ticket, token) = admitted(&app, concert, "fan").await;
    let (status, booked) = book_with(&app, &tier, ("fan", "first"), Some(&token)).await;
    assert_eq!(status, 202, "{booked}");
    let booking = &booked["booking"];
    // Settled, as the settler writes it, with the admission it spent.
    plant_booking(
        &app.state.db,
        PlantedBooking {
            id: booking["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("id"),
            idempotency_key: "first",
            tier_id: tier.id,
            concert_id: concert,
            user_email: "fan@queue.example",
            quantity: 1,
            total_price: 25.into(),
            status: BookingStatus::Confirmed,
            failure_reason: None,
            created_at: Utc::now(),
            admission_ticket_id: Some(ticket),
        },
    )
    .await;

    // Redis loses everything of this deployment; the gateway rebuilds the shard from Postgres.
    let isolation = app.isolation();
    delete_keys(
        app.state.redis.next(),
        &isolation.names.key_prefix,
        isolation.names.redis_shards,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, answer) = loop {
        let (status, answer) = book_once(&app, &tier, ("fan", "second"), Some(&token)).await;
        if status != 503 {
            break (status, answer);
        }
        assert!(Instant::now() < deadline, "the shard was never rebuilt");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("AdmissionRequired")),
        "the admission was spent: {answer}"
    );
    assert_eq!(
        app.redis_stock(concert, tier.id).await,
        Some(9),
        "one ticket sold"
    );
}

/// A booking made with an admission answers its replay without one (the token expired, or the
/// client lost it with the answer): the key's record comes before the admission check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_made_with_an_admission_answers_its_replay_without_one() {
    let app = spawn_app().await;
    let (concert, tier) = create_room(&app, 10, 1_000, Duration::ZERO).await;
    let (_, token) = admitted(&app, concert, "fan").await;
    let (status, booked) = book_with(&app, &tier, ("fan", "bought"), Some(&token)).await;
    assert_eq!(status, 202, "{booked}");
    for token in [None, Some("not-a-token")] {
        let (status, replay) = book_once(&app, &tier, ("fan", "bought"), token).await;
        assert_eq!(
            (status, &replay["booking"]["id"]),
            (202, &booked["booking"]["id"]),
            "{token:?}: {replay}"
        );
    }
    let (status, refused) = book_once(&app, &tier, ("another", "another"), None).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("AdmissionRequired"))
    );
    assert_eq!(app.redis_stock(concert, tier.id).await, Some(9));
}

/// A queue ticket joined under a key answers that key's replay after sales closed; a new join is
/// refused.
/// Creates a concert of one tier of 50 tickets at 10.00 whose sales close two seconds from now,
/// with a waiting room admitting `room` a second if given: the concert, and when sales close.
pub(crate) async fn closing_soon(
    app: &TestApp,
    room: Option<u32>,
) -> (Uuid, TestTier, DateTime<Utc>) {
    let closes = Utc::now() + chrono::Duration::seconds(2);
    let concert = app
        .post_concert(&NewConcertBody {
            sales_close_at: Some(closes),
            waiting_room: room.map(|admit_per_second| WaitingRoomBody { admit_per_second }),
            ..NewConcertBody::new(
                "Closing Night",
                "Hall",
                "2099-01-01T20:00:00Z".parse().expect("date"),
                &[("GA", "10".parse().expect("money"), 50)],
            )
        })
        .await;
    let id = |value: &Value| value.as_str().and_then(|id| id.parse().ok()).expect("id");
    let tier = TestTier {
        id: id(&concert["ticketTiers"][0]["id"]),
        price: 10.0,
        total: 50,
    };
    (id(&concert["id"]), tier, closes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_taken_answers_its_replay_after_sales_closed() {
    let app = spawn_app().await;
    let (concert, _, closes) = closing_soon(&app, Some(1)).await;
    let (status, joined) = join(&app, concert, "early-bird".to_owned()).await;
    assert_eq!(status, 201, "{joined}");

    let wait = (closes - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    let (status, replay) = join(&app, concert, "early-bird".to_owned()).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(ticket_id(&replay), ticket_id(&joined));
    let (status, refused) = join(&app, concert, "latecomer".to_owned()).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("SalesClosed"))
    );
}

/// Sales opened, people queued and were admitted, then the opening was moved later: those who
/// join before the new opening are early again, drawn at it over their own arrival numbers, and
/// admitted in their turn (none stranded without a place), ahead of everyone who joins after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_before_a_postponed_opening_are_drawn_at_it_and_admitted() {
    let app = spawn_app().await;
    let (concert, _) = create_room(&app, 100, 1_000, Duration::ZERO).await;
    admitted(&app, concert, "before").await;

    let reopens = Utc::now() + chrono::Duration::seconds(2);
    let postponed = app
        .client
        .patch(app.url(&format!("/api/admin/concerts/{concert}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "salesOpenAt": reopens }))
        .send()
        .await
        .expect("sent");
    assert_eq!(postponed.status(), 200);
    let mut waiting = Vec::new();
    for n in 0..5 {
        let key = format!("postponed-{n}");
        let (status, answer) = join(&app, concert, key.clone()).await;
        assert_eq!(status, 201, "{answer}");
        assert!(
            answer["queueTicket"]["position"].is_null(),
            "early again: no place before the draw: {answer}"
        );
        waiting.push((key, ticket_id(&answer)));
    }

    let wait = (reopens - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let (_, after) = join(&app, concert, "after".to_owned()).await;
    let after = ticket_id(&after);
    let admitted_all = tokio::time::timeout(Duration::from_secs(20), async {
        for (key, _) in &waiting {
            admitted(&app, concert, key).await;
        }
    })
    .await;
    assert!(
        admitted_all.is_ok(),
        "a joiner of the postponement was never admitted"
    );

    let place_of = room_key(&app, concert, RoomKey::PlaceOf);
    let mut places = Vec::new();
    for (_, ticket) in &waiting {
        let place: Option<u64> = app
            .state
            .redis
            .hget(&place_of, ticket.to_string())
            .await
            .expect("hget");
        places.push(place.expect("drawn a place"));
    }
    places.sort_unstable();
    assert_eq!(
        places,
        [2, 3, 4, 5, 6],
        "their own arrival numbers, the first joiner's 1 kept"
    );
    let places_key = room_key(&app, concert, RoomKey::Places);
    let later: Option<String> = app.state.redis.hget(&places_key, 7).await.expect("hget");
    assert_eq!(
        later,
        Some(after.to_string()),
        "the joiner after the opening comes after them"
    );
}

/// The last ticket booked and not yet paid for: admission pauses, and a ticket says so (and not a
/// wait it cannot know), without being told the concert sold out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_last_tickets_are_being_paid_for_says_admission_is_paused() {
    let app = spawn_app().await;
    let (concert, tier) = create_room(&app, 1, 1_000, Duration::ZERO).await;
    let (_, token) = admitted(&app, concert, "buyer").await;
    let (status, booked) = book_with(&app, &tier, ("buyer", "buyer"), Some(&token)).await;
    assert_eq!(status, 202, "{booked}");

    let (_, joined) = join(&app, concert, "next".to_owned()).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let view = loop {
        let view: Value = app.get_json(&ticket_path(&joined, "")).await;
        if view["queueTicket"]["paused"] == true {
            break view;
        }
        assert!(Instant::now() < deadline, "never paused: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["queueTicket"]["soldOut"], false, "{view}");
    assert_eq!(view["queueTicket"]["admitted"], false, "{view}");
    let mut stream = SseReader::open(&app, &ticket_path(&joined, "/events")).await;
    let event = stream.expect("position").await;
    assert_eq!(event.json()["queueTicket"]["paused"], true);
}

/// One place per person: the same email joins once however it is written, and one address gets
/// places only at the booking limit's pace, so a bot cannot fill the line ahead of people.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_email_holds_one_place_and_one_address_joins_at_the_booking_limit() {
    let app = spawn_app_with(gateway::GatewayConfig {
        booking_limit_per_ip: 5,
        ..testkit::gateway::test_config()
    })
    .await;
    let (concert, _) = create_room(&app, 10, 1, Duration::from_secs(60)).await;
    let (status, first) = join(&app, concert, "Someone".to_owned()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = join(&app, concert, "someone".to_owned()).await;
    assert_eq!(
        (status, ticket_id(&again)),
        (200, ticket_id(&first)),
        "{again}"
    );

    let answers = join_all((0..40).map(|n| join(&app, concert, format!("bot-{n}")))).await;
    let placed = answers.iter().filter(|(status, _)| *status == 201).count();
    let limited = answers.iter().filter(|(status, _)| *status == 429).count();
    assert_eq!(placed + limited, 40, "{answers:?}");
    assert!(
        (1..=10).contains(&placed),
        "{placed} places for one address at 5/s with a burst of 10"
    );
    let seq: u64 = app
        .state
        .redis
        .get(room_key(&app, concert, RoomKey::Seq))
        .await
        .expect("seq");
    assert_eq!(seq, 1 + placed as u64, "no place taken by a refused join");
}

/// Joins `concert`'s room as `email` from client address `from` (the gateway trusts the test's
/// proxy header): the status and the ticket id, if one was answered.
async fn join_from(app: &TestApp, concert: Uuid, email: &str, from: &str) -> (u16, Option<Uuid>) {
    let response = app
        .client
        .post(app.url(&format!("/api/concerts/{concert}/queue")))
        .header(X_FORWARDED_FOR, from)
        .json(&serde_json::json!({ "userEmail": email }))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("json");
    let ticket = answer["queueTicket"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok());
    (status, ticket)
}

/// A bot on one address joins 1,000 times (200 mailboxes, each five times) while 50 households of
/// 20 people each join from their own addresses, all before the draw. The bot holds at most one
/// place per email and only what the per-address limit lets through, so the draw gives it no
/// more of the first places than its small share of the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bot_on_one_address_cannot_crowd_the_line_before_the_draw() {
    let mut config = testkit::gateway::test_config();
    config.booking_limit_per_ip = 10;
    config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    let app = spawn_app_with(config).await;
    let opens_in = Duration::from_secs(8);
    let (concert, _) = create_room(&app, 100, 1, opens_in).await;
    let opening = Instant::now() + opens_in;

    let app = &app;
    let bot = async {
        let mut held: HashMap<String, HashSet<Uuid>> = HashMap::new();
        for wave in (0..1_000).collect::<Vec<u32>>().chunks(50) {
            let joins = wave.iter().map(|n| async move {
                let email = format!("bot-{}@bots.example", n % 200);
                (
                    email.clone(),
                    join_from(app, concert, &email, "198.51.100.66").await,
                )
            });
            for (email, (status, ticket)) in join_all(joins).await {
                match (status, ticket) {
                    (201 | 200, Some(ticket)) => {
                        held.entry(email).or_default().insert(ticket);
                    }
                    (429, None) => {}
                    other => panic!("a bot join answered {other:?}"),
                }
            }
        }
        held
    };
    let households = join_all((0..50u32).map(|house| async move {
        let from = format!("203.0.113.{}", house + 1);
        let people = (0..20).map(|person| {
            let email = format!("person-{house}-{person}@home.example");
            let from = from.clone();
            async move { join_from(app, concert, &email, &from).await }
        });
        join_all(people).await
    }));
    let (held, households) = tokio::join!(bot, households);
    assert!(
        Instant::now() < opening,
        "the joins took too long to be early"
    );

    for (email, tickets) in &held {
        assert_eq!(tickets.len(), 1, "{email} holds {tickets:?}");
    }
    let bot_tickets: HashSet<Uuid> = held.values().flatten().copied().collect();
    let elapsed = opens_in.as_secs_f64() - (opening - Instant::now()).as_secs_f64();
    assert!(
        (bot_tickets.len() as f64) <= 20.0 + 10.0 * elapsed + 1.0,
        "{} bot places in {elapsed:.1} s at 10/s with a burst of 20",
        bot_tickets.len()
    );
    let honest: Vec<Uuid> = households
        .into_iter()
        .flatten()
        .map(|(status, ticket)| {
            assert_eq!(status, 201, "a household member was refused");
            ticket.expect("a ticket")
        })
        .collect();
    assert_eq!(honest.len(), 1_000);

    tokio::time::sleep(opening - Instant::now() + Duration::from_millis(500)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let places = loop {
        let places: HashMap<u64, String> = app
            .state
            .redis
            .hgetall(room_key(app, concert, RoomKey::Places))
            .await
            .expect("places");
        if places.len() == honest.len() + bot_tickets.len() {
            break places;
        }
        assert!(Instant::now() < deadline, "drawn {} places", places.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first_hundred = (1..=100u64)
        .filter(|place| {
            places
                .get(place)
                .and_then(|ticket| ticket.parse().ok())
                .is_some_and(|ticket: Uuid| bot_tickets.contains(&ticket))
        })
        .count();
    let share = bot_tickets.len() as f64 / places.len() as f64;
    assert!(
        (first_hundred as f64) <= 100.0 * share * 2.5 + 5.0,
        "the bot took {first_hundred} of the first 100 places with {:.1} % of the line",
        share * 100.0
    );
}
