import { useEffect, useState } from "react";
import type { Booking } from "./api";
import { formatMoney } from "./money";

/** The booking as it is now: from its accepted answer, then live from its event stream until it
 * is confirmed or failed. */
export function useBookingStatus(initial: Booking): Booking {
  const [booking, setBooking] = useState(initial);
  useEffect(() => {
    if (initial.status !== "pending") return;
    const source = new EventSource(`/api/bookings/${initial.id}/events`);
    source.addEventListener("status", (event) => {
      const next: Booking = JSON.parse((event as MessageEvent).data).booking;
      setBooking(next);
      if (next.status !== "pending") source.close();
    });
    return () => source.close();
  }, [initial]);
  return booking;
}

const statusText = {
  pending: "Pending: your tickets are held while the payment goes through…",
  confirmed: "Confirmed: enjoy the show!",
  failed: "Declined: the payment did not go through, and the tickets were released.",
};

export function BookingStatusView(props: { initial: Booking; concertName: string; tierName: string }) {
  const booking = useBookingStatus(props.initial);
  return (
    <div className={`status status-${booking.status}`} role="status" aria-live="polite">
      <p className="status-line">
        <strong>{statusText[booking.status]}</strong>
      </p>
      <p>
        {booking.quantity} × {props.tierName}, {props.concertName}, {formatMoney(Number(booking.totalPrice))}
        <br />
        Booking <code>{booking.id}</code> for {booking.userEmail}
      </p>
      {booking.status === "failed" && booking.failureReason && <p>Reason: {booking.failureReason}</p>}
    </div>
  );
}
