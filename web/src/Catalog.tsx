import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { fetchConcerts, type Concert, type Tier } from "./api";
import { BookingForm } from "./BookingForm";
import { formatMoney } from "./money";
import { useLiveStock, type FeedState, type Stock } from "./stock";
import { useWaitingRoom } from "./queue";
import { WaitingRoomPanel } from "./WaitingRoom";

const dateFormat = new Intl.DateTimeFormat("en-US", { dateStyle: "full", timeStyle: "short" });

const feedLabel: Record<FeedState, string> = {
  connecting: "Connecting to live availability…",
  live: "Live availability",
  reconnecting: "Reconnecting to live availability…",
};

export function Catalog() {
  const concerts = useQuery({ queryKey: ["concerts"], queryFn: fetchConcerts });
  const { stock, feed } = useLiveStock();
  const [selected, setSelected] = useState<string>();

  return (
    <section aria-labelledby="catalog-title">
      <div className="heading-row">
        <h1 id="catalog-title">Concerts</h1>
        <span className={`feed feed-${feed}`} role="status">
          {feedLabel[feed]}
        </span>
      </div>
      {concerts.isPending && <p>Loading concerts…</p>}
      {concerts.isError && (
        <p className="error" role="alert">
          {concerts.error.message}{" "}
          <button type="button" onClick={() => concerts.refetch()}>
            Try again
          </button>
        </p>
      )}
      {concerts.data?.length === 0 && <p>No concerts on sale yet.</p>}
      {concerts.data?.map((concert) => (
        <ConcertCard
          key={concert.id}
          concert={concert}
          stock={stock}
          selected={selected}
          onSelect={setSelected}
        />
      ))}
    </section>
  );
}

function available(tier: Tier, stock: Stock): number {
  return stock.get(tier.id) ?? tier.availableQuantity;
}

function ConcertCard(props: {
  concert: Concert;
  stock: Stock;
  selected?: string;
  onSelect: (tierId?: string) => void;
}) {
  const { concert, stock, selected, onSelect } = props;
  const { line, join, email } = useWaitingRoom(concert.id);
  const queued = Boolean(concert.waitingRoom);
  // With a waiting room, only an admission opens the booking form.
  const admission = line.state === "admitted" ? line.ticket.admissionToken : undefined;
  const mayBook = !queued || admission !== undefined;
  const chosen = mayBook ? concert.ticketTiers.find((tier) => tier.id === selected) : undefined;
  return (
    <article className="card concert" aria-labelledby={`concert-${concert.id}`}>
      <h2 id={`concert-${concert.id}`}>{concert.name}</h2>
      <p className="meta">
        {dateFormat.format(new Date(concert.date))} · {concert.location}
      </p>
      {concert.description && <p>{concert.description}</p>}
      {queued && <WaitingRoomPanel concert={concert} line={line} join={join} />}
      <ul className="tiers">
        {concert.ticketTiers.map((tier) => {
          const left = available(tier, stock);
          const soldOut = left <= 0;
          return (
            <li key={tier.id} className={soldOut ? "tier sold-out" : "tier"} data-tier={tier.name}>
              <span className="tier-name">{tier.name}</span>
              <span className="price">{formatMoney(tier.price)}</span>
              <span className="left" aria-live="polite">
                {soldOut ? <strong className="badge">Sold out</strong> : `${left.toLocaleString("en-US")} left`}
              </span>
              <button
                type="button"
                disabled={soldOut || !mayBook}
                aria-expanded={selected === tier.id}
                onClick={() => onSelect(selected === tier.id ? undefined : tier.id)}
              >
                {selected === tier.id ? "Close" : "Book"}
              </button>
            </li>
          );
        })}
      </ul>
      {chosen && (
        <BookingForm
          key={chosen.id}
          concert={concert}
          tier={chosen}
          available={available(chosen, stock)}
          admissionToken={admission}
          joinedEmail={admission !== undefined ? (email ?? undefined) : undefined}
        />
      )}
    </article>
  );
}
