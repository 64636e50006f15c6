import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { Dashboard } from "./Dashboard";

const SALES = {
  summary: { totalRevenue: "150.00", totalTicketsSold: 3 },
  salesOverTime: [],
  revenueByTier: [],
};

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** A gateway with ANALYTICS_PUBLIC=false: the dashboard answers only to `key` as a bearer. */
function gateway(key: string) {
  return vi.fn(async (url: string, init?: RequestInit) => {
    if (url === "/api/concerts") return json(200, { concerts: [] });
    const authorization = new Headers(init?.headers).get("authorization");
    if (authorization === `Bearer ${key}`) return json(200, SALES);
    return json(401, {
      code: "Unauthorized",
      detail: authorization ? "That key is not valid." : "Send an analyst key.",
    });
  });
}

function renderDashboard() {
  render(
    <QueryClientProvider client={new QueryClient()}>
      <Dashboard />
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

describe("Dashboard", () => {
  it("asks for an analyst key when the sales are not public, and keeps it for the tab", async () => {
    const fetch = gateway("tk_right");
    vi.stubGlobal("fetch", fetch);
    renderDashboard();
    await screen.findByText("Send an analyst key.");

    fireEvent.change(screen.getByLabelText("Analyst key"), { target: { value: "tk_wrong" } });
    fireEvent.click(screen.getByRole("button", { name: "Show sales" }));
    await screen.findByText("That key is not valid.");

    fireEvent.change(screen.getByLabelText("Analyst key"), { target: { value: "tk_right" } });
    fireEvent.click(screen.getByRole("button", { name: "Show sales" }));
    expect((await screen.findByTestId("total-revenue")).textContent).toBe("$150.00");
    expect(sessionStorage.getItem("tickets.analystKey")).toBe("tk_right");

    fireEvent.click(screen.getByRole("button", { name: "Forget the analyst key" }));
    await screen.findByText("Send an analyst key.");
    expect(sessionStorage.getItem("tickets.analystKey")).toBeNull();
  });
});
