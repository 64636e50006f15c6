import { describe, expect, it } from "vitest";
import { applySnapshot, applyStock } from "./stock";

describe("live stock", () => {
  it("starts from the snapshot and takes each change", () => {
    const snapshot = applySnapshot({
      tiers: [
        { ticketTierId: "a", availableQuantity: 10 },
        { ticketTierId: "b", availableQuantity: 1 },
      ],
    });
    const after = applyStock(snapshot, { ticketTierId: "b", availableQuantity: 0 });
    expect(after.get("a")).toBe(10);
    expect(after.get("b")).toBe(0);
    expect(snapshot.get("b")).toBe(1);
  });

  it("reads the count after a change under its newer name first", () => {
    const after = applyStock(new Map([["a", 5]]), {
      ticketTierId: "a",
      availableQuantity: 4,
      newAvailableQuantity: 4,
    });
    expect(after.get("a")).toBe(4);
  });

  it("a new snapshot replaces everything, as after a reconnect", () => {
    const before = applyStock(new Map(), { ticketTierId: "gone", availableQuantity: 5 });
    const fresh = applySnapshot({ tiers: [{ ticketTierId: "a", availableQuantity: 3 }] });
    expect(before.has("gone")).toBe(true);
    expect(fresh.has("gone")).toBe(false);
  });
});
