import { describe, expect, it } from "vitest";
import { ApiProblem } from "./api";
import { describeWait, keepsPlace, retryDelayMs, waitSeconds } from "./queue";

describe("the wait in line", () => {
  it("is the position over the admission rate, rounded up", () => {
    expect(waitSeconds(1, 200)).toBe(1);
    expect(waitSeconds(1_000, 200)).toBe(5);
    expect(waitSeconds(1_001, 200)).toBe(6);
  });

  it("reads in minutes past the first one", () => {
    expect(describeWait(30)).toBe("less than a minute");
    expect(describeWait(75)).toBe("about a minute");
    expect(describeWait(600)).toBe("about 10 minutes");
  });
});

describe("a place in line when the service fails", () => {
  it("is given up only for a ticket the service does not know", () => {
    expect(keepsPlace(new ApiProblem(404, "QueueTicketNotFound", "no such ticket"))).toBe(false);
    expect(keepsPlace(new ApiProblem(503, "ServiceUnavailable", "busy"))).toBe(true);
    expect(keepsPlace(new ApiProblem(429, "RateLimited", "slow down"))).toBe(true);
    expect(keepsPlace(new TypeError("Failed to fetch"))).toBe(true);
  });

  it("is asked for again after a delay doubling to 16 s, spread at random", () => {
    expect(retryDelayMs(1, 0)).toBe(1000);
    expect(retryDelayMs(2, 0)).toBe(2000);
    expect(retryDelayMs(5, 0)).toBe(16000);
    expect(retryDelayMs(50, 0)).toBe(16000);
    expect(retryDelayMs(1, 1)).toBe(1500);
  });
});
