import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { BookingForm } from "./BookingForm";
import { concert, tier } from "./fixtures";

class QuietEventSource {
  close() {}
  addEventListener() {}
}

function renderForm() {
  vi.stubGlobal("EventSource", QuietEventSource);
  const client = new QueryClient();
  render(
    <QueryClientProvider client={client}>
      <BookingForm concert={concert} tier={tier} available={50} />
    </QueryClientProvider>,
  );
}

function accepted(body: { idempotencyKey: string }): Response {
  return new Response(
    JSON.stringify({
      booking: { id: "b-1", ticketTierId: tier.id, concertId: concert.id, userEmail: "a@b.co", quantity: 2, totalPrice: 200, currency: "USD", status: "pending", createdAt: "2030-01-01T00:00:00Z", key: body.idempotencyKey },
    }),
    { status: 202, headers: { "content-type": "application/json" } },
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("BookingForm", () => {
  it("shows the total and sends one booking for a double click", async () => {
    const fetch = vi.fn(async (_url: string, init: RequestInit) => accepted(JSON.parse(String(init.body))));
    vi.stubGlobal("fetch", fetch);
    renderForm();
    fireEvent.change(screen.getByLabelText("Tickets"), { target: { value: "2" } });
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "a@b.co" } });
    const submit = screen.getByRole("button", { name: "Book for $200.00" });
    fireEvent.click(submit);
    fireEvent.click(submit);
    await screen.findByText(/Pending/);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(JSON.parse(String(fetch.mock.calls[0][1].body))).toMatchObject({ quantity: 2, totalPrice: 200, userEmail: "a@b.co" });
  });

  it("retries a network failure with the same idempotency key", async () => {
    const fetch = vi
      .fn()
      .mockRejectedValueOnce(new TypeError("network down"))
      .mockImplementation(async (_url: string, init: RequestInit) => accepted(JSON.parse(String(init.body))));
    vi.stubGlobal("fetch", fetch);
    renderForm();
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "a@b.co" } });
    fireEvent.click(screen.getByRole("button", { name: /Book for/ }));
    await screen.findByText(/Pending/, undefined, { timeout: 4000 });
    const keys = fetch.mock.calls.map((call) => JSON.parse(String(call[1].body)).idempotencyKey);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBe(keys[1]);
  });

  it("shows a refused field next to the field", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        new Response(
          JSON.stringify({ code: "ValidationFailed", detail: "invalid", errors: [{ field: "userEmail", code: "format", message: "must be an email address" }] }),
          { status: 400, headers: { "content-type": "application/problem+json" } },
        ),
      ),
    );
    renderForm();
    fireEvent.change(screen.getByLabelText("Email"), { target: { value: "nope" } });
    fireEvent.click(screen.getByRole("button", { name: /Book for/ }));
    const message = await screen.findByText("must be an email address");
    expect(screen.getByLabelText("Email").getAttribute("aria-describedby")).toBe(message.id);
    await waitFor(() => expect(screen.getByRole("button", { name: "Try again" })).toBeTruthy());
  });
});
