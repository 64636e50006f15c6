//! The sales dashboard: revenue and tickets of confirmed bookings, for all concerts or
//! one, within an optional window, over time by hour, day or ISO week (UTC).
//!
//! The whole hours of a window are read from the settler's hourly rollups (`sales_hourly`), whose
//! size grows with tiers and hours, not with bookings; the partial first and last hours of a window
//! that does not start and end on the hour are read from the bookings themselves. The answer
//! therefore equals a plain aggregate over confirmed bookings for any window, at a cost bounded by
//! the window's length and at most two hours of bookings.
//!
//! Dashboards run on a small Postgres pool of their own (`ANALYTICS_DB_CONNECTIONS`), so a flood
//! of them cannot take the connections booking lookups and the catalog need; identical queries
//! arriving together share one run, and its answer serves the same query for a second.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use domain::record::format_timestamp;

mod store;

use store::{SalesRow, SalesWindow};

/// Bucket width of `salesOverTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Period {
    Hour,
    Day,
    Week,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
        }
    }
}

/// A validated dashboard query. The window is half-open: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DashboardQuery {
    pub concert_id: Option<Uuid>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub period: Period,
}

/// The years RFC 3339 writes (0000 to 9999), which also stand for an open window; Postgres goes
/// further back and forward.
pub fn open_start() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(0, 1, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .unwrap_or_default()
}

pub fn open_end() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(10_000, 1, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
        .unwrap_or_default()
}

/// The window split into whole hours (from the rollups) and the partial hours at its edges (from
/// the bookings): `(whole, [edge, edge])`, each a half-open range, possibly empty.
type Range = (DateTime<Utc>, DateTime<Utc>);

fn split(start: DateTime<Utc>, end: DateTime<Utc>) -> (Range, [Range; 2]) {
    let hour = TimeDelta::hours(1);
    let floor = |at: DateTime<Utc>| at.duration_trunc(hour).unwrap_or(at);
    let first_whole = if floor(start) == start {
        start
    } else {
        floor(start) + hour
    };
    let last_whole = floor(end);
    if first_whole >= last_whole {
        // No whole hour inside: the window is read from the bookings alone.
        return ((start, start), [(start, end), (end, end)]);
    }
    (
        (first_whole, last_whole),
        [(start, first_whole), (last_whole, end)],
    )
}

/// Confirmed sales of the window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    total_revenue: Decimal,
    total_tickets_sold: i64,
}

/// Sales of one hour, day or ISO week (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Start of the bucket.
    #[schema(format = DateTime)]
    date: String,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    revenue: Decimal,
    tickets: i64,
}

/// Revenue of one tier.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierRevenue {
    tier_name: String,
    concert_name: String,
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    revenue: Decimal,
    /// Share of the total revenue, in percent, two places.
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64)]
    percentage: Decimal,
}

/// Confirmed sales: totals, over time, and by tier.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    summary: Summary,
    sales_over_time: Vec<Bucket>,
    revenue_by_tier: Vec<TierRevenue>,
    period: &'static str,
    time_zone: &'static str,
}

pub async fn dashboard(db: &PgPool, query: &DashboardQuery) -> Result<Dashboard, sqlx::Error> {
    let (whole, [first, last]) = split(
        query.start.unwrap_or_else(open_start),
        query.end.unwrap_or_else(open_end),
    );
    let period = query.period.as_str();
    let window = SalesWindow {
        whole_hours: whole,
        first_hour: first,
        last_hour: last,
    };
    // One row per bucket and tier; both views of the answer are sums of these.
    let rows = store::sales(db, window, query.concert_id, period).await?;

    let mut over_time: BTreeMap<DateTime<Utc>, (Decimal, i64)> = BTreeMap::new();
    let mut by_tier: HashMap<Uuid, TierRevenue> = HashMap::new();
    for SalesRow {
        bucket,
        tier_id,
        tier_name,
        concert_name,
        revenue,
        tickets,
    } in rows
    {
        let sums = over_time.entry(bucket).or_default();
        sums.0 += revenue;
        sums.1 += tickets;
        by_tier
            .entry(tier_id)
            .or_insert_with(|| TierRevenue {
                tier_name,
                concert_name,
                revenue: Decimal::ZERO,
                percentage: Decimal::ZERO,
            })
            .revenue += revenue;
    }
    let total_revenue: Decimal = over_time.values().map(|(revenue, _)| *revenue).sum();
    let total_tickets_sold = over_time.values().map(|(_, tickets)| *tickets).sum();
    let mut revenue_by_tier: Vec<TierRevenue> = by_tier.into_values().collect();
    for tier in &mut revenue_by_tier {
        if !total_revenue.is_zero() {
            tier.percentage = (tier.revenue * Decimal::ONE_HUNDRED / total_revenue).round_dp(2);
        }
    }
    revenue_by_tier.sort_by(|a, b| {
        b.revenue
            .cmp(&a.revenue)
            .then_with(|| a.concert_name.cmp(&b.concert_name))
            .then_with(|| a.tier_name.cmp(&b.tier_name))
    });
    Ok(Dashboard {
        summary: Summary {
            total_revenue,
            total_tickets_sold,
        },
        sales_over_time: over_time
            .into_iter()
            .map(|(at, (revenue, tickets))| Bucket {
                date: format_timestamp(&at),
                revenue,
                tickets,
            })
            .collect(),
        revenue_by_tier,
        period,
        time_zone: "UTC",
    })
}

/// A dashboard query that failed in Postgres (the detail, for the log).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AnalyticsError(pub String);

/// How long an answer serves the same query.
const FRESH: Duration = Duration::from_secs(1);
/// Queries remembered at most; older ones are forgotten first.
const REMEMBERED: usize = 1_000;

/// One run of a query, shared by everyone asking it while it runs and for [`FRESH`] after.
type Run = Shared<BoxFuture<'static, Result<Bytes, String>>>;

/// The dashboard's own share of Postgres, and the runs under way or just finished.
#[derive(Debug)]
pub struct Dashboards {
    db: PgPool,
    runs: Mutex<HashMap<DashboardQuery, (Instant, Run)>>,
}

impl Dashboards {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            runs: Mutex::default(),
        }
    }

    /// The dashboard of `query` as a JSON body: the run under way or fresh, else a new one.
    pub async fn answer(&self, query: DashboardQuery) -> Result<Bytes, AnalyticsError> {
        let run = {
            let mut runs = match self.runs.lock() {
                Ok(runs) => runs,
                Err(poisoned) => poisoned.into_inner(),
            };
            if runs.len() >= REMEMBERED {
                runs.retain(|_, (started, _)| started.elapsed() < FRESH);
            }
            match runs.get(&query) {
                Some((started, run)) if started.elapsed() < FRESH => run.clone(),
                _ => {
                    let db = self.db.clone();
                    let key = query.clone();
                    let run = async move {
                        let dashboard = dashboard(&db, &key).await.map_err(|e| e.to_string())?;
                        simd_json::to_vec(&dashboard)
                            .map(Bytes::from)
                            .map_err(|e| e.to_string())
                    }
                    .boxed()
                    .shared();
                    runs.insert(query, (Instant::now(), run.clone()));
                    run
                }
            }
        };
        run.await.map_err(AnalyticsError)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RFC 3339 timestamp, as tests write them.
    pub(crate) fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("timestamp")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_window_splits_into_whole_hours_and_partial_edges() {
        let (whole, edges) = split(at("2026-01-01T10:15:00Z"), at("2026-01-01T13:05:00Z"));
        assert_eq!(
            whole,
            (at("2026-01-01T11:00:00Z"), at("2026-01-01T13:00:00Z"))
        );
        assert_eq!(
            edges[0],
            (at("2026-01-01T10:15:00Z"), at("2026-01-01T11:00:00Z"))
        );
        assert_eq!(
            edges[1],
            (at("2026-01-01T13:00:00Z"), at("2026-01-01T13:05:00Z"))
        );

        let (whole, edges) = split(at("2026-01-01T10:00:00Z"), at("2026-01-01T12:00:00Z"));
        assert_eq!(
            whole,
            (at("2026-01-01T10:00:00Z"), at("2026-01-01T12:00:00Z"))
        );
        assert_eq!(edges[0].0, edges[0].1, "aligned: no edge");
        assert_eq!(edges[1].0, edges[1].1);

        let (whole, edges) = split(at("2026-01-01T10:10:00Z"), at("2026-01-01T10:50:00Z"));
        assert_eq!(whole.0, whole.1, "inside one hour: no whole hour");
        assert_eq!(
            edges[0],
            (at("2026-01-01T10:10:00Z"), at("2026-01-01T10:50:00Z"))
        );
    }
}
