import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { Link } from "react-router-dom";
import { ApiProblem, fetchConcerts, fetchMyBookings, type Booking } from "./api";
import { formatMoney } from "./money";
import { accessToken, useCustomer } from "./session";

const dateFormat = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "short" });

const statusLabel = { pending: "Pending", confirmed: "Confirmed", failed: "Declined" };

/** `/bookings`: every booking made with the signed-in customer's email, newest first. */
export function MyBookings() {
  const customer = useCustomer();
  const concerts = useQuery({ queryKey: ["concerts"], queryFn: fetchConcerts });
  const pages = useInfiniteQuery({
    queryKey: ["my-bookings", customer?.email],
    queryFn: async ({ pageParam }) => {
      const token = await accessToken();
      if (!token) throw new ApiProblem(401, "Unauthorized", "Your session has ended: sign in again.");
      return fetchMyBookings(token, pageParam);
    },
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (page) => page.nextCursor ?? undefined,
    enabled: customer !== undefined,
    // A booking made a moment ago shows the next time the page opens.
    staleTime: 0,
  });
  if (!customer) {
    return (
      <section aria-labelledby="bookings-title">
        <h1 id="bookings-title">My bookings</h1>
        <p>
          <Link to="/signin">Sign in</Link> to see your bookings.
        </p>
      </section>
    );
  }
  const names = (booking: Booking) => {
    const concert = concerts.data?.find((each) => each.id === booking.concertId);
    const tier = concert?.ticketTiers.find((each) => each.id === booking.ticketTierId);
    return { concert: concert?.name ?? "A past concert", tier: tier?.name ?? "Tickets" };
  };
  const bookings = pages.data?.pages.flatMap((page) => page.bookings) ?? [];
  return (
    <section aria-labelledby="bookings-title">
      <div className="heading-row">
        <h1 id="bookings-title">My bookings</h1>
        <span className="meta">{customer.email}</span>
      </div>
      {pages.isPending && <p>Loading your bookings…</p>}
      {pages.isError && (
        <p className="error" role="alert">
          {pages.error.message}{" "}
          <button type="button" onClick={() => pages.refetch()}>
            Try again
          </button>
        </p>
      )}
      {pages.isSuccess && bookings.length === 0 && (
        <p>
          No bookings yet. <Link to="/">Find a concert</Link>.
        </p>
      )}
      <ul className="bookings">
        {bookings.map((booking) => {
          const { concert, tier } = names(booking);
          return (
            <li key={booking.id} className={`card status status-${booking.status}`} data-booking={booking.id}>
              <h2>{concert}</h2>
              <p>
                {booking.quantity} × {tier}, {formatMoney(Number(booking.totalPrice))} ·{" "}
                <strong>{statusLabel[booking.status]}</strong>
              </p>
              <p className="meta">
                Booked {dateFormat.format(new Date(booking.createdAt))} · <code>{booking.id}</code>
              </p>
              {booking.status === "failed" && booking.failureReason && <p>Reason: {booking.failureReason}</p>}
            </li>
          );
        })}
      </ul>
      {pages.hasNextPage && (
        <button type="button" onClick={() => pages.fetchNextPage()} disabled={pages.isFetchingNextPage}>
          {pages.isFetchingNextPage ? "Loading…" : "Show older bookings"}
        </button>
      )}
    </section>
  );
}
