import { describe, expect, it } from "vitest";
import { dashboardQuery, problemFrom } from "./api";

function problem(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

describe("problems", () => {
  it("names the fields the API refused", async () => {
    const error = await problemFrom(
      problem(400, {
        code: "ValidationFailed",
        detail: "the request has invalid fields",
        errors: [{ field: "userEmail", code: "format", message: "must be an email address" }],
      }),
    );
    expect(error.status).toBe(400);
    expect(error.forField("userEmail")).toBe("must be an email address");
    expect(error.forField("quantity")).toBeUndefined();
  });

  it("says how many are left when a tier runs out", async () => {
    const error = await problemFrom(
      problem(409, { code: "TicketTierOutOfStock", detail: "Not enough tickets left.", availableQuantity: 2 }),
    );
    expect(error.message).toBe("Not enough tickets left. Only 2 left.");
  });

  it("keeps Retry-After and gives a plain message when the body is not a problem", async () => {
    const error = await problemFrom(new Response("upstream", { status: 503, headers: { "retry-after": "1" } }));
    expect(error.retryAfterSeconds).toBe(1);
    expect(error.message).toMatch(/try again/);
  });
});

describe("dashboardQuery", () => {
  it("sends only the filters that are set", () => {
    expect(dashboardQuery({ concertId: "", startDate: "2026-01-01", endDate: "", period: "week" })).toBe(
      "/api/analytics/dashboard?period=week&startDate=2026-01-01",
    );
  });
});
