//! Every metric the settler exports, defined here with its help text. Names start with
//! `settler_`; labels are bounded (outcome, shard, tier).

use std::time::Duration;

use domain::ids::{Shard, TierId};
use domain::record::BookingStatus;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use redis_store::scripts::trim::Depth;
use runtime::health::HealthMetrics;

const SETTLED: &str = "settler_bookings_settled_total";
const ACCEPT_TO_FINAL: &str = "settler_accept_to_final_seconds";
const PAYMENT: &str = "settler_payment_seconds";
const DEAD_LETTERS: &str = "settler_dead_letters_total";
const STREAM_LENGTH: &str = "settler_stream_length";
const STREAM_PENDING: &str = "settler_stream_pending";
const CONSUMER_LAG: &str = "settler_consumer_lag";
const STOCK_DRIFT: &str = "settler_stock_drift";
const OLDEST_UNSETTLED: &str = "settler_oldest_unsettled_seconds";
const REFUNDS: &str = "settler_refunds_total";
const READMITTED: &str = "settler_readmitted_total";
const MAILS: &str = "settler_mails_total";

/// Seconds from a booking's acceptance to its final status: payments take 0.2-0.8 s, a backlog
/// much longer.
const ACCEPT_TO_FINAL_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 120.0,
];
/// Seconds one charge takes at the provider.
const PAYMENT_BUCKETS: [f64; 10] = [0.005, 0.025, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0];

/// The dependency, shard-recovery and not-whole metrics both binaries keep (`runtime::health`).
pub const HEALTH: HealthMetrics = HealthMetrics {
    service: "settler",
    recoveries: "settler_shard_recoveries_total",
    dependency_up: "settler_dependency_up",
    not_whole: "settler_shards_not_whole",
};

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> runtime::telemetry::Exporter {
    runtime::telemetry::install_metrics(
        &[
            (ACCEPT_TO_FINAL, &ACCEPT_TO_FINAL_BUCKETS),
            (PAYMENT, &PAYMENT_BUCKETS),
        ],
        describe,
    )
}

fn describe() {
    HEALTH.describe("");
    describe_counter!(
        SETTLED,
        "Bookings settled, by outcome (confirmed, failed) and whether the entry was a redelivery."
    );
    describe_histogram!(
        ACCEPT_TO_FINAL,
        Unit::Seconds,
        "Time from the gateway accepting a booking to its final status."
    );
    describe_histogram!(
        PAYMENT,
        Unit::Seconds,
        "Time one charge took at the payment provider."
    );
    describe_counter!(
        DEAD_LETTERS,
        "Accepted bookings that could never be written, resolved as failed and recorded in dead_letters."
    );
    describe_gauge!(
        OLDEST_UNSETTLED,
        "Age of the oldest booking a shard's stream holds unsettled; 0 when none waits."
    );
    describe_counter!(
        REFUNDS,
        "Refunds asked of the payment provider for bookings that failed after their charge."
    );
    describe_counter!(
        READMITTED,
        "Confirmations accepted before a loss of Redis data, reserved again (carried) or failed, by outcome."
    );
    describe_counter!(
        MAILS,
        "Mail deliveries tried, by outcome: sent, failed (tried again later with backoff), given_up (refused for good)."
    );
    describe_gauge!(STREAM_LENGTH, "Entries in a shard's settlement stream.");
    describe_gauge!(
        STREAM_PENDING,
        "Entries delivered to a settler and not yet acknowledged, per shard."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Entries not yet delivered to any settler, per shard."
    );
    describe_gauge!(
        STOCK_DRIFT,
        "Tickets unaccounted for in a tier: total - available - pending - confirmed; 0 when consistent."
    );
}

pub fn settled(status: BookingStatus, redelivered: bool) {
    counter!(SETTLED, "outcome" => status.as_str(), "redelivered" => if redelivered { "true" } else { "false" }).increment(1);
}

pub fn accept_to_final(took: Duration) {
    histogram!(ACCEPT_TO_FINAL).record(took.as_secs_f64());
}

pub fn payment_took(took: Duration) {
    histogram!(PAYMENT).record(took.as_secs_f64());
}

pub fn dead_lettered() {
    counter!(DEAD_LETTERS).increment(1);
}

pub fn stream_depth(shard: Shard, depth: &Depth) {
    let shard = shard.to_string();
    gauge!(STREAM_LENGTH, "shard" => shard.clone()).set(depth.length as f64);
    gauge!(STREAM_PENDING, "shard" => shard.clone()).set(depth.pending as f64);
    if let Some(lag) = depth.lag {
        gauge!(CONSUMER_LAG, "shard" => shard.clone()).set(lag as f64);
    }
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    let waited_ms = depth
        .oldest_unsettled_ms
        .map_or(0, |at| now_ms.saturating_sub(at));
    gauge!(OLDEST_UNSETTLED, "shard" => shard).set(waited_ms as f64 / 1000.0);
}

pub fn refunded() {
    counter!(REFUNDS).increment(1);
}

pub fn readmitted(outcome: &'static str) {
    counter!(READMITTED, "outcome" => outcome).increment(1);
}

pub fn stock_drift(tier_id: TierId, drift: i64) {
    gauge!(STOCK_DRIFT, "tier" => tier_id.to_string()).set(drift as f64);
}

/// What became of one mail delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailOutcome {
    Sent,
    /// Tried again later.
    Failed,
    /// Refused for good by the server, attempt after attempt.
    GivenUp,
}

pub fn mail(outcome: MailOutcome) {
    let outcome = match outcome {
        MailOutcome::Sent => "sent",
        MailOutcome::Failed => "failed",
        MailOutcome::GivenUp => "given_up",
    };
    counter!(MAILS, "outcome" => outcome).increment(1);
}
