//! Every metric the gateway exports, defined here with its help text. Names start with
//! `gateway_`; labels come from route templates and fixed outcome names, never raw input.

use std::time::Duration;

use domain::ids::ConcertId;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use runtime::health::HealthMetrics;

const REQUESTS: &str = "gateway_http_requests_total";
const REQUEST_DURATION: &str = "gateway_http_request_duration_seconds";
const BOOKINGS: &str = "gateway_bookings_total";
const SCRIPT_DURATION: &str = "gateway_redis_script_duration_seconds";
const SSE_CLIENTS: &str = "gateway_sse_clients";
const SSE_EVENTS: &str = "gateway_sse_events_total";
const RATE_LIMITED: &str = "gateway_rate_limited_total";
const SHED: &str = "gateway_load_shed_total";
const IN_FLIGHT: &str = "gateway_http_requests_in_flight";
const QUEUE_WAITING: &str = "gateway_queue_waiting";
const QUEUE_ADMITTED: &str = "gateway_queue_admitted_total";
const QUEUE_EXPIRED: &str = "gateway_queue_admissions_expired_total";
const QUEUE_SPENT: &str = "gateway_queue_admissions_spent_total";
const LOST: &str = "gateway_bookings_lost_total";
const CONNECTIONS_CLOSED: &str = "gateway_connections_closed_total";

/// A millisecond service: most answers take well under 5 ms; anything past 1 s is an incident.
const REQUEST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// One script run on a local Redis takes tens to hundreds of microseconds.
const SCRIPT_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5,
];

/// The dependency, shard-recovery and not-whole metrics both binaries keep (`runtime::health`).
pub const HEALTH: HealthMetrics = HealthMetrics {
    service: "gateway",
    recoveries: "gateway_shard_recoveries_total",
    dependency_up: "gateway_dependency_up",
    not_whole: "gateway_shards_not_whole",
};

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> runtime::telemetry::Exporter {
    runtime::telemetry::install_metrics(
        &[
            (REQUEST_DURATION, &REQUEST_BUCKETS),
            (SCRIPT_DURATION, &SCRIPT_BUCKETS),
        ],
        describe,
    )
}

fn describe() {
    HEALTH.describe("; bookings on them answer 503");
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request (to the headers, for streams), by route template and method."
    );
    describe_counter!(
        BOOKINGS,
        "Booking attempts, by outcome (accepted, replayed, out_of_stock, ...)."
    );
    describe_histogram!(
        SCRIPT_DURATION,
        Unit::Seconds,
        "Time one run of the reservation script took, as the gateway saw it."
    );
    describe_gauge!(
        SSE_CLIENTS,
        "Server-sent event streams open, by stream (stock, booking, queue)."
    );
    // Present from the start, so a gateway that never had a stream reports none rather than nothing.
    for stream in ["stock", "booking", "queue"] {
        gauge!(SSE_CLIENTS, "stream" => stream).set(0.0);
    }
    describe_counter!(
        SSE_EVENTS,
        "Events written to server-sent event clients, by event (snapshot, stock, status)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429, by limit (requests, bookings)."
    );
    describe_gauge!(
        IN_FLIGHT,
        "Requests being answered (event streams aside): what the autoscaler's per-pod target is set against."
    );
    gauge!(IN_FLIGHT).set(0.0);
    describe_gauge!(
        QUEUE_WAITING,
        "People in a concert's waiting room not yet admitted, by concert (reported by the gateway admitting for it)."
    );
    describe_counter!(
        QUEUE_ADMITTED,
        "People a waiting room admitted, by concert (counted by the gateway that admitted them)."
    );
    describe_counter!(
        QUEUE_EXPIRED,
        "Admissions whose token expired unspent (their places went to others), by concert."
    );
    describe_counter!(QUEUE_SPENT, "Admissions spent on a booking, by concert.");
    describe_counter!(
        SHED,
        "Requests refused with 503 because the gateway was at its concurrency limit."
    );
    describe_counter!(
        LOST,
        "Bookings this gateway answered 202 that Redis lost before any settler read them (in no stream and no row)."
    );
    describe_counter!(
        CONNECTIONS_CLOSED,
        "Connections the gateway closed for passing a limit, by limit (header_timeout, idle_timeout)."
    );
}

pub fn request(route: &'static str, method: &str, status: u16, took: Duration) {
    let method = method.to_owned();
    counter!(REQUESTS, "route" => route, "method" => method.clone(), "status" => status.to_string()).increment(1);
    histogram!(REQUEST_DURATION, "route" => route, "method" => method).record(took.as_secs_f64());
}

pub fn booking(outcome: &'static str) {
    counter!(BOOKINGS, "outcome" => outcome).increment(1);
}

pub fn script(took: Duration) {
    histogram!(SCRIPT_DURATION).record(took.as_secs_f64());
}

/// Counts an open stream for as long as the guard lives.
#[derive(Debug)]
pub struct SseClient(&'static str);

impl SseClient {
    pub fn open(stream: &'static str) -> Self {
        gauge!(SSE_CLIENTS, "stream" => stream).increment(1.0);
        Self(stream)
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        gauge!(SSE_CLIENTS, "stream" => self.0).decrement(1.0);
    }
}

/// What one admission tick of a concert's waiting room found and did.
pub fn waiting_room(concert: ConcertId, waiting: u64, admitted: u64, expired: u64) {
    let concert = concert.to_string();
    gauge!(QUEUE_WAITING, "concert" => concert.clone()).set(waiting as f64);
    counter!(QUEUE_ADMITTED, "concert" => concert.clone()).increment(admitted);
    counter!(QUEUE_EXPIRED, "concert" => concert).increment(expired);
}

pub fn admission_spent(concert: ConcertId) {
    counter!(QUEUE_SPENT, "concert" => concert.to_string()).increment(1);
}

/// Counts a request in flight for as long as the guard lives.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        gauge!(IN_FLIGHT).increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT).decrement(1.0);
    }
}

pub fn sse_event(event: &'static str) {
    counter!(SSE_EVENTS, "event" => event).increment(1);
}

pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

pub fn shed() {
    counter!(SHED).increment(1);
}

pub fn lost(count: u64) {
    counter!(LOST).increment(count);
}

pub fn connection_closed(limit: &'static str) {
    counter!(CONNECTIONS_CLOSED, "limit" => limit).increment(1);
}
