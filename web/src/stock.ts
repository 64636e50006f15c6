// Live stock from `/api/concerts/stream`: a `snapshot` of every tier, then a `stock` event per change.
import { useEffect, useState } from "react";

/** Available tickets by tier id. */
export type Stock = ReadonlyMap<string, number>;

interface TierStock {
  ticketTierId: string;
  availableQuantity: number;
}

export function applySnapshot(data: { tiers: TierStock[] }): Stock {
  return new Map(data.tiers.map((tier) => [tier.ticketTierId, tier.availableQuantity]));
}

export function applyStock(stock: Stock, change: TierStock): Stock {
  const next = new Map(stock);
  next.set(change.ticketTierId, change.availableQuantity);
  return next;
}

export type FeedState = "connecting" | "live" | "reconnecting";

/** The live stock map and the feed's state. EventSource reconnects by itself; each reconnect
 * starts with a fresh snapshot, so nothing missed while away stays wrong. */
export function useLiveStock(): { stock: Stock; feed: FeedState } {
  const [stock, setStock] = useState<Stock>(new Map());
  const [feed, setFeed] = useState<FeedState>("connecting");
  useEffect(() => {
    const source = new EventSource("/api/concerts/stream");
    source.addEventListener("snapshot", (event) => {
      setStock(applySnapshot(JSON.parse((event as MessageEvent).data)));
      setFeed("live");
    });
    source.addEventListener("stock", (event) => {
      setStock((current) => applyStock(current, JSON.parse((event as MessageEvent).data)));
    });
    source.onerror = () => setFeed("reconnecting");
    return () => source.close();
  }, []);
  return { stock, feed };
}
