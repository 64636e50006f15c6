import { useId, useState, type FormEvent } from "react";
import { useMutation } from "@tanstack/react-query";
import { ApiProblem, createBooking, type Booking, type Concert, type Tier } from "./api";
import { BookingStatusView } from "./BookingStatus";
import { EmailInput } from "./EmailInput";
import { formatMoney, totalPrice } from "./money";
import { attemptFor, type Attempt } from "./purchase";
import { accessToken, useCustomer } from "./session";

/** The API takes at most 10 tickets per booking. */
const MAX_PER_BOOKING = 10;

/** Worth retrying with the same key: nothing reached the service, or it asked to come back. */
function transient(error: Error): boolean {
  return error instanceof ApiProblem && [0, 429, 503].includes(error.status);
}

export function BookingForm(props: {
  concert: Concert;
  tier: Tier;
  available: number;
  /** The waiting room's admission, for a concert that has one. */
  admissionToken?: string;
  /** The email the waiting room was joined with: the admission books for it alone. */
  joinedEmail?: string;
}) {
  const { concert, tier, available, admissionToken, joinedEmail } = props;
  const ids = useId();
  const [quantity, setQuantity] = useState(1);
  const customer = useCustomer();
  const [typedEmail, setEmail] = useState(joinedEmail ?? "");
  // Signed in, a booking takes the account's email.
  const fixedEmail = customer?.email ?? joinedEmail;
  const email = customer?.email ?? typedEmail;
  const [attempt, setAttempt] = useState<Attempt>();
  const [booking, setBooking] = useState<Booking>();
  const submission = useMutation({
    mutationFn: async (request: Parameters<typeof createBooking>[0]) =>
      createBooking({ ...request, accessToken: customer ? await accessToken() : undefined }),
    retry: (failures, error) => failures < 3 && transient(error),
    retryDelay: (failures, error) =>
      error instanceof ApiProblem && error.retryAfterSeconds ? error.retryAfterSeconds * 1000 : 500 * 2 ** failures,
    onSuccess: setBooking,
  });
  const problem = submission.error instanceof ApiProblem ? submission.error : undefined;
  const total = totalPrice(tier.price, quantity);
  const most = Math.max(1, Math.min(MAX_PER_BOOKING, available));

  function submit(event: FormEvent) {
    event.preventDefault();
    if (submission.isPending) return;
    const next = attemptFor(attempt, { tierId: tier.id, quantity, email });
    setAttempt(next);
    submission.mutate({
      ticketTierId: tier.id,
      userEmail: next.email,
      quantity: next.quantity,
      totalPrice: total,
      idempotencyKey: next.idempotencyKey,
      admissionToken,
    });
  }

  if (booking) {
    return (
      <div className="booking-panel">
        <BookingStatusView initial={booking} concertName={concert.name} tierName={tier.name} />
        <button
          type="button"
          onClick={() => {
            setBooking(undefined);
            setAttempt(undefined);
            submission.reset();
          }}
        >
          Book more tickets
        </button>
      </div>
    );
  }

  const emailError = problem?.forField("userEmail");
  const quantityError = problem?.forField("quantity");
  const formError = problem && !emailError && !quantityError ? problem.message : undefined;
  return (
    <form className="booking-panel" onSubmit={submit} noValidate aria-label={`Book ${tier.name}`}>
      <h3>
        {tier.name} · {formatMoney(tier.price)} each
      </h3>
      <div className="field">
        <label htmlFor={`${ids}-quantity`}>Tickets</label>
        <select
          id={`${ids}-quantity`}
          value={quantity}
          onChange={(event) => setQuantity(Number(event.target.value))}
          aria-invalid={Boolean(quantityError)}
          aria-describedby={quantityError ? `${ids}-quantity-error` : undefined}
        >
          {Array.from({ length: most }, (_, index) => index + 1).map((count) => (
            <option key={count} value={count}>
              {count}
            </option>
          ))}
        </select>
        {quantityError && (
          <p className="error" id={`${ids}-quantity-error`}>
            {quantityError}
          </p>
        )}
      </div>
      <div className="field">
        <label htmlFor={`${ids}-email`}>Email</label>
        <EmailInput
          id={`${ids}-email`}
          value={email}
          onChange={setEmail}
          readOnly={fixedEmail !== undefined}
          errorId={emailError ? `${ids}-email-error` : undefined}
        />
        {customer ? (
          <p className="meta">You are signed in: the booking is yours.</p>
        ) : (
          joinedEmail !== undefined && <p className="meta">The email you joined the line with.</p>
        )}
        {emailError && (
          <p className="error" id={`${ids}-email-error`}>
            {emailError}
          </p>
        )}
      </div>
      <p className="total">
        Total <strong>{formatMoney(total)}</strong>
      </p>
      <button type="submit" className="primary" disabled={submission.isPending}>
        {submission.isPending ? "Booking…" : problem ? "Try again" : `Book for ${formatMoney(total)}`}
      </button>
      {formError && (
        <p className="error" role="alert">
          {formError}
        </p>
      )}
    </form>
  );
}
