// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { accessToken, signIn, signOut } from "./session";

function grant(access: string, refresh: string, expiresIn = 900) {
  return { accessToken: access, refreshToken: refresh, expiresIn, customer: { id: "c1", email: "ada@example.com" } };
}

function answer(status: number, body?: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

afterEach(() => {
  vi.unstubAllGlobals();
  localStorage.clear();
});

describe("the session", () => {
  it("uses the access token while it is fresh, and refreshes it once for callers at the same time", async () => {
    const calls: string[] = [];
    let refreshes = 0;
    vi.stubGlobal("fetch", async (path: string) => {
      calls.push(path);
      if (path === "/api/auth/sessions") return answer(201, grant("a1", "r1", 30));
      refreshes += 1;
      return answer(200, grant(`a${refreshes + 1}`, `r${refreshes + 1}`));
    });
    await signIn("link-token");
    // 30 s left is inside the refresh margin: the next use refreshes first, once for all.
    const tokens = await Promise.all([accessToken(), accessToken(), accessToken()]);
    expect(refreshes).toBe(1);
    expect(new Set(tokens)).toEqual(new Set(["a2"]));
    expect(await accessToken()).toBe("a2");
    expect(calls).toEqual(["/api/auth/sessions", "/api/auth/refresh"]);
  });

  it("forgets the session when the service refuses its refresh token", async () => {
    vi.stubGlobal("fetch", async (path: string) =>
      path === "/api/auth/sessions" ? answer(201, grant("a1", "r1", 0)) : answer(401, { code: "TokenRefused" }),
    );
    await signIn("link-token");
    await expect(accessToken()).rejects.toMatchObject({ status: 401 });
    expect(await accessToken()).toBeUndefined();
  });

  it("signs out at the service and here, even when the service cannot be reached", async () => {
    const seen: string[] = [];
    vi.stubGlobal("fetch", async (path: string, init?: RequestInit) => {
      seen.push(`${init?.method ?? "GET"} ${path}`);
      if (path === "/api/auth/sessions") return answer(201, grant("a1", "r1"));
      throw new TypeError("offline");
    });
    await signIn("link-token");
    await signOut();
    expect(seen).toEqual(["POST /api/auth/sessions", "DELETE /api/auth/sessions/current"]);
    expect(await accessToken()).toBeUndefined();
  });
});
