import { useId, useState } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import {
  Bar,
  BarChart,
  CartesianGrid,
  ComposedChart,
  Legend,
  Line,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import { ApiProblem, fetchConcerts, fetchDashboard, type DashboardFilters, type Period } from "./api";
import { formatMoney } from "./money";

const REFRESH_MS = 5_000;
const ACCENT = "#3b82f6";
const SECOND = "#f59e0b";
/** Where the analyst key is kept: for this tab's life only, as an operator's secret should be. */
const KEY_STORAGE = "tickets.analystKey";

/** A refusal for want of a credential is not retried: the person is asked for a key instead. */
function refused(error: unknown): boolean {
  return error instanceof ApiProblem && (error.status === 401 || error.status === 403);
}

/** Charts grow into place unless the person asked for less motion. */
const animate = !window.matchMedia?.("(prefers-reduced-motion: reduce)").matches;

function bucketLabel(date: string, period: Period): string {
  const at = new Date(date);
  return period === "hour"
    ? at.toLocaleString("en-US", { month: "short", day: "numeric", hour: "numeric", timeZone: "UTC" })
    : at.toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" });
}

export function Dashboard() {
  const ids = useId();
  const [filters, setFilters] = useState<DashboardFilters>({
    concertId: "",
    startDate: "",
    endDate: "",
    period: "day",
  });
  const [analystKey, setAnalystKey] = useState(() => sessionStorage.getItem(KEY_STORAGE) ?? "");
  const [keyDraft, setKeyDraft] = useState("");
  const concerts = useQuery({ queryKey: ["concerts"], queryFn: fetchConcerts });
  const dashboard = useQuery({
    queryKey: ["dashboard", filters, analystKey],
    queryFn: () => fetchDashboard(filters, analystKey),
    refetchInterval: (query) => (refused(query.state.error) ? false : REFRESH_MS),
    retry: (failures, error) => !refused(error) && failures < 3,
    placeholderData: keepPreviousData,
  });
  const chooseKey = (key: string) => {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    setAnalystKey(key);
    setKeyDraft("");
  };
  const set = (change: Partial<DashboardFilters>) => setFilters((current) => ({ ...current, ...change }));
  const data = dashboard.data;
  const average = data && data.summary.totalTicketsSold > 0 ? data.summary.totalRevenue / data.summary.totalTicketsSold : 0;
  const overTime = data?.salesOverTime.map((point) => ({ ...point, label: bucketLabel(point.date, filters.period) })) ?? [];
  const byTier = data?.revenueByTier.map((tier) => ({ ...tier, label: `${tier.tierName} · ${tier.concertName}` })) ?? [];

  return (
    <section aria-labelledby="analytics-title">
      <h1 id="analytics-title">Sales</h1>
      <form className="filters" onSubmit={(event) => event.preventDefault()} aria-label="Filters">
        <div className="field">
          <label htmlFor={`${ids}-concert`}>Concert</label>
          <select id={`${ids}-concert`} value={filters.concertId} onChange={(event) => set({ concertId: event.target.value })}>
            <option value="">All concerts</option>
            {concerts.data?.map((concert) => (
              <option key={concert.id} value={concert.id}>
                {concert.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${ids}-from`}>From</label>
          <input id={`${ids}-from`} type="date" value={filters.startDate} onChange={(event) => set({ startDate: event.target.value })} />
        </div>
        <div className="field">
          <label htmlFor={`${ids}-to`}>To</label>
          <input id={`${ids}-to`} type="date" value={filters.endDate} onChange={(event) => set({ endDate: event.target.value })} />
        </div>
        <div className="field">
          <label htmlFor={`${ids}-period`}>Group by</label>
          <select id={`${ids}-period`} value={filters.period} onChange={(event) => set({ period: event.target.value as Period })}>
            <option value="hour">Hour</option>
            <option value="day">Day</option>
            <option value="week">Week</option>
          </select>
        </div>
      </form>

      {dashboard.isError && (
        <p className="error" role="alert">
          {dashboard.error.message}
        </p>
      )}
      {refused(dashboard.error) && (
        <form
          className="filters"
          aria-label="Analyst sign-in"
          onSubmit={(event) => {
            event.preventDefault();
            chooseKey(keyDraft.trim());
          }}
        >
          <div className="field">
            <label htmlFor={`${ids}-key`}>Analyst key</label>
            <input
              id={`${ids}-key`}
              type="password"
              autoComplete="off"
              value={keyDraft}
              onChange={(event) => setKeyDraft(event.target.value)}
              placeholder="tk_…"
            />
          </div>
          <button type="submit" className="primary" disabled={!keyDraft.trim()}>
            Show sales
          </button>
        </form>
      )}
      {analystKey && (
        <p>
          <button type="button" onClick={() => chooseKey("")}>
            Forget the analyst key
          </button>
        </p>
      )}
      {dashboard.isPending && <p>Loading sales…</p>}
      {data && (
        <>
          <div className="cards">
            <div className="card stat">
              <span className="stat-label">Revenue</span>
              <span className="stat-value" data-testid="total-revenue">
                {formatMoney(data.summary.totalRevenue)}
              </span>
            </div>
            <div className="card stat">
              <span className="stat-label">Tickets sold</span>
              <span className="stat-value" data-testid="tickets-sold">
                {data.summary.totalTicketsSold.toLocaleString("en-US")}
              </span>
            </div>
            <div className="card stat">
              <span className="stat-label">Average ticket</span>
              <span className="stat-value">{formatMoney(average)}</span>
            </div>
          </div>

          <div className="card chart">
            <h2>Sales over time (UTC)</h2>
            {overTime.length === 0 ? (
              <p>No confirmed sales in this range yet.</p>
            ) : (
              <ResponsiveContainer width="100%" height={280}>
                <ComposedChart data={overTime} margin={{ top: 10, right: 8, left: 8, bottom: 0 }}>
                  <CartesianGrid strokeDasharray="3 3" strokeOpacity={0.3} vertical={false} />
                  <XAxis dataKey="label" tick={{ fill: "currentColor", fontSize: 12 }} />
                  <YAxis yAxisId="revenue" tickFormatter={(value: number) => formatMoney(value)} tick={{ fill: "currentColor", fontSize: 12 }} width={80} />
                  <YAxis yAxisId="tickets" orientation="right" allowDecimals={false} tick={{ fill: "currentColor", fontSize: 12 }} width={40} />
                  <Tooltip formatter={(value, name) => (name === "Revenue" ? formatMoney(Number(value)) : value)} contentStyle={{ color: "#111" }} />
                  <Legend />
                  <Bar yAxisId="revenue" dataKey="revenue" name="Revenue" fill={ACCENT} radius={[4, 4, 0, 0]} maxBarSize={48} isAnimationActive={animate} />
                  <Line yAxisId="tickets" dataKey="tickets" name="Tickets" stroke={SECOND} strokeWidth={2} dot isAnimationActive={animate} />
                </ComposedChart>
              </ResponsiveContainer>
            )}
          </div>

          <div className="card chart">
            <h2>Revenue by tier</h2>
            {byTier.length === 0 ? (
              <p>No confirmed sales in this range yet.</p>
            ) : (
              <ResponsiveContainer width="100%" height={Math.max(160, byTier.length * 44)}>
                <BarChart data={byTier} layout="vertical" margin={{ top: 0, right: 16, left: 8, bottom: 0 }}>
                  <CartesianGrid strokeDasharray="3 3" strokeOpacity={0.3} horizontal={false} />
                  <XAxis type="number" tickFormatter={(value: number) => formatMoney(value)} tick={{ fill: "currentColor", fontSize: 12 }} />
                  <YAxis type="category" dataKey="label" width={200} tick={{ fill: "currentColor", fontSize: 12 }} />
                  <Tooltip
                    formatter={(value, _name, item) => `${formatMoney(Number(value))} (${Number(item.payload.percentage).toFixed(1)} %)`}
                    contentStyle={{ color: "#111" }}
                  />
                  <Bar dataKey="revenue" fill={SECOND} name="revenue" radius={[0, 4, 4, 0]} maxBarSize={36} isAnimationActive={animate} />
                </BarChart>
              </ResponsiveContainer>
            )}
          </div>
        </>
      )}
    </section>
  );
}
