// The signed-in customer's session: the tokens a sign-in link was spent for, kept in this
// browser's storage so a reload stays signed in, the access token refreshed shortly before it
// expires, and all of it forgotten on sign-out or when the service ends the session.

import { useSyncExternalStore } from "react";
import { ApiProblem, endSession, refreshSession, startSession, type Customer, type Grant } from "./api";

interface Session {
  accessToken: string;
  refreshToken: string;
  /** Milliseconds since the epoch after which the access token is refreshed first. */
  refreshAt: number;
  customer: Customer;
}

const STORAGE_KEY = "tickets.session";
/** Refreshed this long before the access token expires, so no request carries a stale one. */
const REFRESH_MARGIN_MS = 60_000;

const listeners = new Set<() => void>();
let cached: { raw: string | null; session?: Session } = { raw: null };

function read(): Session | undefined {
  const raw = localStorage.getItem(STORAGE_KEY);
  if (raw !== cached.raw) {
    let session: Session | undefined;
    try {
      const parsed = raw ? JSON.parse(raw) : undefined;
      session = typeof parsed?.accessToken === "string" && typeof parsed?.customer?.email === "string" ? parsed : undefined;
    } catch {
      session = undefined;
    }
    cached = { raw, session };
  }
  return cached.session;
}

function write(session: Session | undefined) {
  if (session) localStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else localStorage.removeItem(STORAGE_KEY);
  listeners.forEach((listener) => listener());
}

function kept(grant: Grant): Session {
  const session = {
    accessToken: grant.accessToken,
    refreshToken: grant.refreshToken,
    refreshAt: Date.now() + grant.expiresIn * 1000 - REFRESH_MARGIN_MS,
    customer: grant.customer,
  };
  write(session);
  return session;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  // Another tab signing in or out.
  window.addEventListener("storage", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("storage", listener);
  };
}

/** The signed-in customer, re-rendering when they sign in or out (in this tab or another). */
export function useCustomer(): Customer | undefined {
  return useSyncExternalStore(subscribe, () => read()?.customer);
}

/** Spends a sign-in link's token for a session. */
export async function signIn(linkToken: string): Promise<Customer> {
  return kept(await startSession(linkToken)).customer;
}

/** Tabs refresh one at a time: a refresh token works once, and presenting it twice ends the
 * session, so a tab that waited reads the pair the first one stored. */
async function oneAtATime<T>(work: () => Promise<T>): Promise<T> {
  return navigator.locks ? navigator.locks.request(STORAGE_KEY, work) : work();
}

/** The refresh under way in this tab, which every caller meanwhile waits for. */
let refreshing: Promise<string | undefined> | undefined;

/** A current access token, refreshed first when it is about to expire; none when signed out or
 * when the service ended the session. */
export async function accessToken(): Promise<string | undefined> {
  const session = read();
  if (!session) return undefined;
  if (Date.now() < session.refreshAt) return session.accessToken;
  refreshing ??= refresh().finally(() => {
    refreshing = undefined;
  });
  return refreshing;
}

function refresh(): Promise<string | undefined> {
  return oneAtATime(async () => {
    const current = read();
    if (!current || Date.now() < current.refreshAt) return current?.accessToken;
    try {
      return kept(await refreshSession(current.refreshToken)).accessToken;
    } catch (error) {
      if (error instanceof ApiProblem && error.status === 401) write(undefined);
      throw error;
    }
  });
}

/** Ends the session here and at the service (if it can be reached; the tokens are forgotten
 * either way). */
export async function signOut(): Promise<void> {
  const token = await accessToken().catch(() => undefined);
  write(undefined);
  if (token) await endSession(token).catch(() => undefined);
}
