//! The table of figures against DESIGN.md's targets, and the charts.

use std::fmt::Write as _;
use std::path::Path;

use loadtest::pressure::Outcome;
use plotters::prelude::*;

use crate::fanout::{Delivery, Fanout};
use crate::http::{ADMISSION_WINDOW, ADMIT_PER_SECOND, HttpFigures, SIEGE};
use crate::instructions::Instructions;
use crate::redis_limit::{RedisLimit, ScriptRate};
use crate::settings::Settings;
use crate::settlement::Settlement;

pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// Answers that were not `expected`, and requests with no answer, as a short note.
pub(crate) fn unexpected(outcome: &Outcome, expected: u16) -> String {
    let other = outcome.answered() - outcome.with_status(expected);
    if other == 0 && outcome.failures == 0 {
        String::new()
    } else {
        format!(
            "; {other} answers other than {expected}, {} unanswered",
            outcome.failures
        )
    }
}

/// The median and the 99th percentile of an outcome's latency.
fn quantiles(outcome: &Outcome) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        outcome.percentile_ms(50.0),
        outcome.percentile_ms(99.0)
    )
}

pub(crate) fn table(
    settings: &Settings,
    redis: &RedisLimit,
    http: &HttpFigures,
    instructions: &Instructions,
    settle: &Settlement,
    fanout: &Fanout,
) -> String {
    let booking_ratio = http.booking_max.throughput() / redis.per_second();
    let catalog_ratio = http.hello.throughput() / http.catalog.throughput();
    let mut table = String::new();
    let mut row = |measure: &str, result: String, target: &str, verdict: &str| {
        let _ = writeln!(table, "| {measure} | {result} | {target} | {verdict} |");
    };
    row("Measure", "Result".into(), "Target", "");
    row("---", "---".into(), "---", "---");
    let rate = |script: &ScriptRate| {
        format!(
            "{}/s, p50 {:.2} ms, p99 {:.2} ms",
            thousands(script.per_second),
            script.p50_ms,
            script.p99_ms
        )
    };
    row(
        "Redis: reference script, a booking's essential work (`redis-benchmark`)",
        format!(
            "{} (median of {} runs, {} clients)",
            rate(&redis.reference),
            redis.runs,
            redis.clients
        ),
        "the yardstick",
        "",
    );
    row(
        "Redis: `reserve.lua` by SHA, every feature (`redis-benchmark`, in turn with the reference)",
        format!(
            "{} = {:.2}x the reference (median of {} runs)",
            rate(&redis.reserve),
            redis.ratio(),
            redis.runs
        ),
        ">= 0.75x the reference; the physical limit",
        verdict(redis.ratio() >= 0.75),
    );
    let memory = &redis.memory;
    row(
        "Redis: memory per booking (`INFO memory` over bookings, each its own customer)",
        format!(
            "{:.0} B pending, {:.0} B settled and trimmed, over {}; one record {} B, its idempotency key {} B (`MEMORY USAGE`)",
            memory.pending_bytes,
            memory.settled_bytes,
            thousands(memory.bookings as f64),
            memory.record_bytes,
            memory.idempotency_bytes
        ),
        "reported",
        "",
    );
    row(
        "Gateway: `POST /api/bookings`, as fast as answered",
        format!(
            "{}/s = {booking_ratio:.2}x Redis, {} ({} connections{})",
            thousands(http.booking_max.throughput()),
            quantiles(&http.booking_max),
            settings.connections,
            unexpected(&http.booking_max, 202)
        ),
        ">= 0.5x Redis",
        verdict(booking_ratio >= 0.5),
    );
    let signed_in_ratio = http.booking_signed_in.throughput() / http.booking_max.throughput();
    row(
        "... the same, signed in: one customer's access token (JWT, HS256) verified per booking",
        format!(
            "{}/s = {signed_in_ratio:.2}x guests, {}{}",
            thousands(http.booking_signed_in.throughput()),
            quantiles(&http.booking_signed_in),
            unexpected(&http.booking_signed_in, 202)
        ),
        "reported: the cost of signing in",
        "",
    );
    let join_ratio = http.join_max.throughput() / http.booking_max.throughput();
    row(
        "Waiting room: `POST /api/concerts/{id}/queue`, as fast as answered",
        format!(
            "{}/s = {join_ratio:.2}x bookings, {}{}",
            thousands(http.join_max.throughput()),
            quantiles(&http.join_max),
            unexpected(&http.join_max, 201)
        ),
        ">= 1x bookings",
        verdict(join_ratio >= 1.0),
    );
    let admission_ratio = http.admission / f64::from(ADMIT_PER_SECOND);
    row(
        "Waiting room: admissions of a room admitting 1,000/s",
        format!(
            "{:.1}/s over {} s = {admission_ratio:.3}x",
            http.admission,
            ADMISSION_WINDOW.as_secs()
        ),
        "within 5 %",
        verdict((admission_ratio - 1.0).abs() <= 0.05),
    );
    row(
        "Gateway: `POST /api/bookings` at half the Redis rate",
        format!(
            "{}/s asked, {}/s answered, {}{}",
            thousands(http.half_rate),
            thousands(http.booking_half.throughput()),
            quantiles(&http.booking_half),
            unexpected(&http.booking_half, 202)
        ),
        "p99 < 5 ms",
        verdict(http.booking_half.percentile_ms(99.0) < 5.0),
    );
    row(
        "... the same, besieged: silent sockets, endless bodies, a dashboard flood",
        format!(
            "{}/s answered, {} ({} silent, {} slow bodies, {} dashboards/s{})",
            thousands(http.booking_besieged.throughput()),
            quantiles(&http.booking_besieged),
            SIEGE.silent_sockets,
            SIEGE.slow_bodies,
            SIEGE.dashboards_per_second,
            unexpected(&http.booking_besieged, 202)
        ),
        "bookings go on",
        verdict(http.booking_besieged.with_status(202) > 0),
    );
    row(
        "Hello-world hyper server",
        format!(
            "{}/s, p99 {:.2} ms",
            thousands(http.hello.throughput()),
            http.hello.percentile_ms(99.0)
        ),
        "the yardstick",
        "",
    );
    row(
        "Gateway: instructions per `POST /api/bookings`, against a hello-world request (callgrind)",
        format!(
            "{} per booking = {:.2}x hello-world's {} ({} bookings, {} hello-world requests counted)",
            thousands(instructions.booking.per_request),
            instructions.ratio(),
            thousands(instructions.hello.per_request),
            thousands(instructions.booking.requests as f64),
            thousands(instructions.hello.requests as f64)
        ),
        "<= 2x hello-world",
        verdict(instructions.ratio() <= 2.0),
    );
    row(
        "Gateway: `GET /api/concerts`",
        format!(
            "{}/s = hello-world / {catalog_ratio:.2}, p99 {:.2} ms{}",
            thousands(http.catalog.throughput()),
            http.catalog.percentile_ms(99.0),
            unexpected(&http.catalog, 200)
        ),
        "within 2x of hello-world",
        verdict(catalog_ratio <= 2.0),
    );
    row(
        "Settler: bookings settled into Postgres",
        format!(
            "{}/s ({} bookings, {} ms payment latency)",
            thousands(settle.per_second),
            thousands(settle.settled as f64),
            settle.latency_ms
        ),
        ">= 5,000/s at 500 ms",
        verdict(settle.per_second >= 5_000.0 && settle.latency_ms >= 500),
    );
    let delivered = |delivery: &Delivery, change: &str| {
        format!(
            "{} of {} clients streaming on {} gateways ({} stream requests answered 503 and asked again); every one of {} {change} reached all its open streams: {}, at least {}; p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            thousands(delivery.connected as f64),
            thousands(delivery.clients as f64),
            settings.sse_gateways,
            thousands(delivery.retried as f64),
            delivery.rounds.len(),
            if delivery.reached_all() { "yes" } else { "no" },
            thousands(delivery.fewest_reached() as f64),
            delivery.percentile_ms(50.0),
            delivery.percentile_ms(99.0),
            delivery.latency.max() as f64 / 1e3
        )
    };
    let on_time = |delivery: &Delivery| {
        delivery.connected >= 50_000
            && delivery.reached_all()
            && delivery.percentile_ms(99.0) < 1_000.0
    };
    row(
        "SSE: a stock change reaching every client",
        delivered(&fanout.stock, "changes"),
        "50,000 clients, p99 < 1 s",
        verdict(on_time(&fanout.stock)),
    );
    row(
        "Waiting room: a position update reaching every waiting client (timed from the tick's pub/sub message)",
        delivered(&fanout.queue, "admission ticks"),
        "50,000 clients, p99 < 1 s",
        verdict(on_time(&fanout.queue)),
    );
    row(
        "SSE: gateway memory per idle stream",
        format!(
            "{:.1} KiB (resident memory growth / streams)",
            fanout.kib_per_stream
        ),
        "< 10 KiB",
        verdict(fanout.kib_per_stream < 10.0),
    );
    table
}

/// Latency percentiles per second of the fixed-rate booking run.
pub(crate) fn booking_chart(path: &Path, http: &HttpFigures) -> anyhow::Result<()> {
    let seconds = &http.booking_half.per_second;
    let series = |percentile: f64| -> Vec<(f64, f64)> {
        seconds
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(s, h)| {
                (
                    s as f64 + 1.0,
                    h.value_at_percentile(percentile) as f64 / 1e3,
                )
            })
            .collect()
    };
    let lines = [
        ("p50", 50.0, BLUE),
        ("p99", 99.0, RED),
        ("p99.9", 99.9, MAGENTA),
    ];
    let top = lines
        .iter()
        .flat_map(|(_, p, _)| series(*p))
        .map(|(_, ms)| ms)
        .fold(5.0_f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "POST /api/bookings at {}/s: latency per second",
                thousands(http.half_rate)
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..(seconds.len() as f64 + 1.0), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("second of the run")
        .y_desc("latency, ms")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 5.0), (seconds.len() as f64 + 1.0, 5.0)],
            BLACK.mix(0.4),
        ))?
        .label("target p99 (5 ms)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (name, percentile, color) in lines {
        chart
            .draw_series(LineSeries::new(series(percentile), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Share of SSE deliveries within each latency, stock changes and waiting-room positions.
pub(crate) fn fanout_chart(path: &Path, fanout: &Fanout) -> anyhow::Result<()> {
    let curve = |delivery: &Delivery| -> Vec<(f64, f64)> {
        (0..=1000)
            .map(|step| {
                let percentile = f64::from(step) / 10.0;
                (delivery.percentile_ms(percentile), percentile)
            })
            .collect()
    };
    let slowest = fanout.stock.latency.max().max(fanout.queue.latency.max());
    let right = (slowest as f64 / 1e3 * 1.1).max(10.0);
    let root = SVGBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "A change reaching {} SSE clients: share delivered by latency",
                thousands(fanout.stock.connected.max(fanout.queue.connected) as f64)
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..right, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("latency from the booking request or the admission tick, ms")
        .y_desc("deliveries, %")
        .draw()?;
    let lines = [
        (
            "stock change (from the booking request)",
            &fanout.stock,
            BLUE,
        ),
        ("waiting-room position (from the tick)", &fanout.queue, RED),
    ];
    for (name, delivery, color) in lines {
        chart
            .draw_series(LineSeries::new(curve(delivery), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}
