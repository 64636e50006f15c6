import { afterEach, describe, expect, it } from "vitest";
import { cleanup, render, screen } from "@testing-library/react";
import { WaitingRoomPanel } from "./WaitingRoom";
import type { Concert, QueueTicket } from "./api";
import { concert as onSale } from "./fixtures";

const concert: Concert = { ...onSale, waitingRoom: { admitPerSecond: 10 } };

function ticket(paused: boolean): QueueTicket {
  return { id: "t-1", concertId: concert.id, ticketToken: "0a1b", position: 1200, admitted: false, soldOut: false, paused };
}

function renderWaiting(paused: boolean) {
  render(<WaitingRoomPanel concert={concert} line={{ state: "waiting", ticket: ticket(paused) }} join={() => {}} />);
}

afterEach(cleanup);

describe("the waiting room panel", () => {
  it("estimates the wait from the admission rate while the room admits", () => {
    renderWaiting(false);
    expect(screen.getByRole("region", { name: "Waiting room" }).textContent).toContain("estimated wait about 2 minutes");
  });

  it("tells no wait while admission is paused, since nobody knows how long that lasts", () => {
    renderWaiting(true);
    const text = screen.getByRole("region", { name: "Waiting room" }).textContent ?? "";
    expect(text).toContain("admission is paused");
    expect(text).not.toContain("estimated wait");
    expect(text).toContain("1,200");
  });
});
