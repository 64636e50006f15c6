// The gateway's HTTP API: the types of what it answers (generated from its OpenAPI document into
// api-schema.ts, which `make test` checks is current), and its RFC 9457 problems as errors.

import type { components } from "./api-schema";

export type Tier = components["schemas"]["TicketTier"];
export type Concert = components["schemas"]["Concert"];
export type BookingStatus = components["schemas"]["BookingStatus"];
export type Booking = components["schemas"]["BookingRecord"];
export type BookingRequest = components["schemas"]["BookingBody"];
export type Period = components["schemas"]["Period"];
export type Dashboard = components["schemas"]["Dashboard"];
export type QueueTicket = components["schemas"]["TicketView"];

export interface DashboardFilters {
  concertId: string;
  startDate: string;
  endDate: string;
  period: Period;
}

export type FieldProblem = components["schemas"]["FieldError"];

/** An answer of the API that is not a success, or no answer at all; `message` is what the person
 * should read: the API's own words, or a plain one for a network failure. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly fieldErrors: FieldProblem[] = [],
    readonly retryAfterSeconds?: number,
  ) {
    super(detail);
  }

  /** The error for one form field, if the API named it. */
  forField(field: string): string | undefined {
    return this.fieldErrors.find((error) => error.field === field)?.message;
  }
}

const NETWORK_PROBLEM = "The ticket service could not be reached. Check your connection and try again.";

/** Reads a problem body (or whatever came instead) into an ApiProblem. */
export async function problemFrom(response: Response): Promise<ApiProblem> {
  const retry = Number(response.headers.get("retry-after"));
  const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : undefined;
  try {
    const body = await response.json();
    const detail =
      body.code === "TicketTierOutOfStock" && typeof body.availableQuantity === "number"
        ? `${body.detail ?? body.title} Only ${body.availableQuantity} left.`
        : (body.detail ?? body.title ?? response.statusText);
    return new ApiProblem(response.status, body.code ?? "Unknown", detail, body.errors ?? [], retryAfter);
  } catch {
    return new ApiProblem(
      response.status,
      "Unknown",
      response.status >= 500
        ? "The ticket service is having trouble. Please try again in a moment."
        : `The request failed (${response.status}).`,
      [],
      retryAfter,
    );
  }
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiProblem(0, "NetworkError", NETWORK_PROBLEM);
  }
  if (!response.ok) {
    throw await problemFrom(response);
  }
  return (await response.json()) as T;
}

export async function fetchConcerts(): Promise<Concert[]> {
  const body = await call<{ concerts: Concert[] }>("/api/concerts");
  return body.concerts.map((concert) => ({
    ...concert,
    ticketTiers: concert.ticketTiers.map((tier) => ({ ...tier, price: Number(tier.price) })),
  }));
}

/** A booking, with the waiting room's admission for a concert that has one, and the customer's
 * access token when signed in (the booking then takes their email). */
export async function createBooking(
  request: BookingRequest & { admissionToken?: string; accessToken?: string },
): Promise<Booking> {
  const { admissionToken, accessToken, ...booking } = request;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (admissionToken) headers["admission-token"] = admissionToken;
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  const body = await call<{ booking: Booking }>("/api/bookings", {
    method: "POST",
    headers,
    body: JSON.stringify(booking),
  });
  return body.booking;
}

/** Joins a concert's waiting room as `email`: one place per email, so joining again (a double
 * click, a retry, another tab) answers the same place, and its admission books for that email. */
export async function joinQueue(concertId: string, email: string): Promise<QueueTicket> {
  const body = await call<{ queueTicket: QueueTicket }>(`/api/concerts/${concertId}/queue`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userEmail: email }),
  });
  return body.queueTicket;
}

/** Where a queue ticket is read, with the credential its join answered (the id alone reads
 * nothing); `tail` is "" for the ticket, "/events" for its stream. */
export function queueTicketPath(id: string, token: string, tail: "" | "/events" = ""): string {
  return `/api/queue/${id}${tail}?token=${encodeURIComponent(token)}`;
}

export async function fetchQueueTicket(id: string, token: string): Promise<QueueTicket> {
  const body = await call<{ queueTicket: QueueTicket }>(queueTicketPath(id, token));
  return body.queueTicket;
}

export function dashboardQuery(filters: DashboardFilters): string {
  const query = new URLSearchParams({ period: filters.period });
  if (filters.concertId) query.set("concertId", filters.concertId);
  if (filters.startDate) query.set("startDate", filters.startDate);
  if (filters.endDate) query.set("endDate", filters.endDate);
  return `/api/analytics/dashboard?${query}`;
}

/** The dashboard of `filters`; with `analystKey` (an `analyst` or `admin` API key), sent as the
 * bearer a gateway with `ANALYTICS_PUBLIC=false` asks for. */
export async function fetchDashboard(filters: DashboardFilters, analystKey = ""): Promise<Dashboard> {
  const body = await call<Dashboard>(dashboardQuery(filters), analystKey ? { headers: bearer(analystKey) } : undefined);
  return {
    ...body,
    summary: {
      totalRevenue: Number(body.summary.totalRevenue),
      totalTicketsSold: Number(body.summary.totalTicketsSold),
    },
    salesOverTime: body.salesOverTime.map((point) => ({
      ...point,
      revenue: Number(point.revenue),
      tickets: Number(point.tickets),
    })),
    revenueByTier: body.revenueByTier.map((tier) => ({
      ...tier,
      revenue: Number(tier.revenue),
      percentage: Number(tier.percentage),
    })),
  };
}

export type Grant = components["schemas"]["Grant"];
export type Customer = components["schemas"]["CustomerView"];
export type MyBookingsPage = components["schemas"]["MyBookingsPage"];

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function postJson<T>(path: string, body: unknown): Promise<T> {
  return call<T>(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Mails a sign-in link to `email`; the answer is the same whether or not it ever booked. */
export async function requestSignInLink(email: string): Promise<void> {
  await postJson("/api/auth/links", { email });
}

export function startSession(token: string): Promise<Grant> {
  return postJson("/api/auth/sessions", { token });
}

export function refreshSession(refreshToken: string): Promise<Grant> {
  return postJson("/api/auth/refresh", { refreshToken });
}

export async function endSession(accessToken: string): Promise<void> {
  const response = await fetch("/api/auth/sessions/current", { method: "DELETE", headers: bearer(accessToken) });
  if (!response.ok) throw await problemFrom(response);
}

export function fetchMyBookings(accessToken: string, cursor?: string): Promise<MyBookingsPage> {
  const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
  return call<MyBookingsPage>(`/api/me/bookings${query}`, { headers: bearer(accessToken) });
}
