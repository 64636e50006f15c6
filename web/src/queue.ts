// A concert's waiting room, as one visitor lives it: join once with an email (the ticket, its
// credential and the email kept in local storage, so a reload keeps the place, and the booking
// uses that email), follow the position over `/api/queue/{id}/events`, and
// end admitted (with the token to book with) or told it sold out.
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiProblem, fetchQueueTicket, joinQueue, queueTicketPath, type QueueTicket } from "./api";

const storageKey = (concertId: string) => `queue:${concertId}`;
const emailKey = (concertId: string) => `queue-email:${concertId}`;

/** A place in line as kept: the ticket and the credential that reads it. */
type Place = { id: string; token: string };

function storedPlace(concertId: string): Place | null {
  try {
    const place = JSON.parse(localStorage.getItem(storageKey(concertId)) ?? "null") as Partial<Place> | null;
    return place?.id && place.token ? { id: place.id, token: place.token } : null;
  } catch {
    // Kept by an older version (the id alone, which no longer reads the ticket): join again.
    return null;
  }
}

/** Seconds until a place `position` is reached at `admitPerSecond`, rounded up. */
export function waitSeconds(position: number, admitPerSecond: number): number {
  return Math.ceil(position / admitPerSecond);
}

export function describeWait(seconds: number): string {
  if (seconds < 60) return "less than a minute";
  const minutes = Math.round(seconds / 60);
  return minutes === 1 ? "about a minute" : `about ${minutes} minutes`;
}

/** Whether a failure to read the ticket leaves the place worth keeping: only a ticket the
 * service does not know (404) is given up; an overloaded or unreachable service is asked again. */
export function keepsPlace(error: unknown): boolean {
  return !(error instanceof ApiProblem && error.status === 404);
}

/** How long to wait before asking again after `failures` failures in a row: doubling from a
 * second up to 16 s, with up to half again at random so a crowd does not come back at once. */
export function retryDelayMs(failures: number, random: number = Math.random()): number {
  const base = 1000 * 2 ** Math.min(Math.max(failures - 1, 0), 4);
  return Math.round(base * (1 + random / 2));
}

export type Line =
  | { state: "outside" }
  | { state: "joining" }
  | { state: "waiting"; ticket: QueueTicket }
  | { state: "admitted"; ticket: QueueTicket & { admissionToken: string } }
  | { state: "soldout"; ticket: QueueTicket }
  | { state: "failed"; message: string };

/** The visitor's place in a concert's line, and the email it was taken with: follows it live
 * once joined. */
export function useWaitingRoom(concertId: string): {
  line: Line;
  join: (email: string) => void;
  email: string | null;
} {
  const [line, setLine] = useState<Line>({ state: "outside" });
  const [place, setPlace] = useState<Place | null>(() => storedPlace(concertId));
  const [email, setEmail] = useState<string | null>(() => localStorage.getItem(emailKey(concertId)));
  // Bumped to read the ticket and open its stream again after either failed.
  const [attempt, setAttempt] = useState(0);
  const failures = useRef(0);

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
    if (!place) return;
    let source: EventSource | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    const again = () => {
      if (closed) return;
      failures.current += 1;
      retry = setTimeout(() => setAttempt((n) => n + 1), retryDelayMs(failures.current));
    };
    fetchQueueTicket(place.id, place.token)
      .then((ticket) => {
        if (closed) return;
        follow(ticket);
        if (ticket.admitted || ticket.soldOut) return;
        source = new EventSource(queueTicketPath(place.id, place.token, "/events"));
        for (const name of ["position", "admitted", "soldout"]) {
          source.addEventListener(name, (event) => {
            failures.current = 0;
            follow(JSON.parse((event as MessageEvent).data).queueTicket);
            if (name !== "position") source?.close();
          });
        }
        // The browser reconnects a dropped stream by itself, but gives up on one refused (a 503
        // while the service is busy): the place is kept and asked for again.
        source.onerror = () => {
          if (source?.readyState === EventSource.CLOSED) again();
        };
      })
      .catch((error: unknown) => {
        if (keepsPlace(error)) {
          again();
          return;
        }
        // A ticket the service no longer knows: join again.
        localStorage.removeItem(storageKey(concertId));
        localStorage.removeItem(emailKey(concertId));
        if (!closed) {
          setPlace(null);
          setLine({ state: "outside" });
        }
      });
    return () => {
      closed = true;
      clearTimeout(retry);
      source?.close();
    };
  }, [concertId, place, follow, attempt]);

  const join = useCallback(
    (joining: string) => {
      setLine({ state: "joining" });
      joinQueue(concertId, joining)
        .then((ticket) => {
          const joined = { id: ticket.id, token: ticket.ticketToken };
          localStorage.setItem(storageKey(concertId), JSON.stringify(joined));
          localStorage.setItem(emailKey(concertId), joining);
          follow(ticket);
          setEmail(joining);
          setPlace(joined);
        })
        .catch((error: Error) => setLine({ state: "failed", message: error.message }));
    },
    [concertId, follow],
  );

  return { line, join, email };
}
