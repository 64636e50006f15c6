import { describe, expect, it } from "vitest";
import { formatMoney, totalPrice } from "./money";

describe("money", () => {
  it("totals in whole cents", () => {
    expect(totalPrice(19.99, 3)).toBe(59.97);
    expect(totalPrice(0.1, 3)).toBe(0.3);
  });

  it("formats dollars", () => {
    expect(formatMoney(1234.5)).toBe("$1,234.50");
  });
});
