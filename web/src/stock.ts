// Live stock from `/api/concerts/stream`: a `snapshot` of every tier, then an unnamed event (a
// `message`) per change.
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

/** A change as the stream sends it: the count after it, under both of its names. */
interface StockChange extends TierStock {
  newAvailableQuantity?: number;
}

export function applyStock(stock: Stock, change: StockChange): Stock {
  const next = new Map(stock);
  next.set(change.ticketTierId, change.newAvailableQuantity ?? change.availableQuantity);
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
    source.onmessage = (event) => {
      setStock((current) => applyStock(current, JSON.parse(event.data)));
    };
    source.onerror = () => setFeed("reconnecting");
    return () => source.close();
  }, []);
  return { stock, feed };
}
