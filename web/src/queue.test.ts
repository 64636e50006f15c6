import { describe, expect, it } from "vitest";
import { describeWait, waitSeconds } from "./queue";

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
