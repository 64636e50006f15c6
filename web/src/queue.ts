// A concert's waiting room, as one visitor lives it: join once (the ticket id kept in local
// storage, so a reload keeps the place), follow the position over `/api/queue/{id}/events`, and
// end admitted (with the token to book with) or told it sold out.
import { useCallback, useEffect, useState } from "react";
import { fetchQueueTicket, joinQueue, type QueueTicket } from "./api";

const storageKey = (concertId: string) => `queue:${concertId}`;

/** Seconds until a place `position` is reached at `admitPerSecond`, rounded up. */
export function waitSeconds(position: number, admitPerSecond: number): number {
  return Math.ceil(position / admitPerSecond);
}

export function describeWait(seconds: number): string {
  if (seconds < 60) return "less than a minute";
  const minutes = Math.round(seconds / 60);
  return minutes === 1 ? "about a minute" : `about ${minutes} minutes`;
}

export type Line =
  | { state: "outside" }
  | { state: "joining" }
  | { state: "waiting"; ticket: QueueTicket }
  | { state: "admitted"; ticket: QueueTicket & { admissionToken: string } }
  | { state: "soldout"; ticket: QueueTicket }
  | { state: "failed"; message: string };

/** The visitor's place in a concert's line: follows it live once joined. */
export function useWaitingRoom(concertId: string): { line: Line; join: () => void } {
  const [line, setLine] = useState<Line>({ state: "outside" });
  const [ticketId, setTicketId] = useState<string | null>(() => localStorage.getItem(storageKey(concertId)));

  const follow = useCallback((ticket: QueueTicket) => {
    if (ticket.admitted && ticket.admissionToken) {
      setLine({ state: "admitted", ticket: { ...ticket, admissionToken: ticket.admissionToken } });
    } else if (ticket.soldOut) {
      setLine({ state: "soldout", ticket });
    } else {
      setLine({ state: "waiting", ticket });
    }
  }, []);

  useEffect(() => {
    if (!ticketId) return;
    let source: EventSource | undefined;
    let closed = false;
    fetchQueueTicket(ticketId)
      .then((ticket) => {
        if (closed) return;
        follow(ticket);
        if (ticket.admitted || ticket.soldOut) return;
        source = new EventSource(`/api/queue/${ticketId}/events`);
        for (const name of ["position", "admitted", "soldout"]) {
          source.addEventListener(name, (event) => {
            follow(JSON.parse((event as MessageEvent).data).queueTicket);
            if (name !== "position") source?.close();
          });
        }
      })
      .catch(() => {
        // A ticket the service no longer knows: join again.
        localStorage.removeItem(storageKey(concertId));
        if (!closed) {
          setTicketId(null);
          setLine({ state: "outside" });
        }
      });
    return () => {
      closed = true;
      source?.close();
    };
  }, [concertId, ticketId, follow]);

  const join = useCallback(() => {
    setLine({ state: "joining" });
    joinQueue(concertId, crypto.randomUUID())
      .then((ticket) => {
        localStorage.setItem(storageKey(concertId), ticket.id);
        follow(ticket);
        setTicketId(ticket.id);
      })
      .catch((error: Error) => setLine({ state: "failed", message: error.message }));
  }, [concertId, follow]);

  return { line, join };
}
