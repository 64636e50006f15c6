import { describe, expect, it } from "vitest";
import { attemptFor } from "./purchase";

let counter = 0;
const key = () => `key-${++counter}`;

describe("attemptFor", () => {
  it("reuses the key when the same purchase is retried", () => {
    const first = attemptFor(undefined, { tierId: "t", quantity: 2, email: "a@b.co" }, key);
    const retry = attemptFor(first, { tierId: "t", quantity: 2, email: " a@b.co " }, key);
    expect(retry.idempotencyKey).toBe(first.idempotencyKey);
  });

  it("makes a new key when what is bought changes", () => {
    const first = attemptFor(undefined, { tierId: "t", quantity: 2, email: "a@b.co" }, key);
    const more = attemptFor(first, { tierId: "t", quantity: 3, email: "a@b.co" }, key);
    const other = attemptFor(more, { tierId: "u", quantity: 3, email: "a@b.co" }, key);
    const someoneElse = attemptFor(other, { tierId: "u", quantity: 3, email: "c@d.co" }, key);
    const keys = new Set([first, more, other, someoneElse].map((attempt) => attempt.idempotencyKey));
    expect(keys.size).toBe(4);
  });
});
