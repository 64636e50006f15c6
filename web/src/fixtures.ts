// What the web app's unit tests render: one concert with one tier, on sale.
import type { Concert, Tier } from "./api";

export const tier: Tier = { id: "tier-1", concertId: "c-1", name: "VIP", price: 100, totalQuantity: 100, availableQuantity: 50 };

export const concert: Concert = {
  id: "c-1",
  name: "Night",
  description: "",
  location: "Hall",
  date: "2030-01-01T20:00:00Z",
  salesOpenAt: "2029-01-01T00:00:00Z",
  salesCloseAt: "2030-01-01T20:00:00Z",
  ticketTiers: [tier],
};
