import { useId, useState, type FormEvent } from "react";
import type { Concert } from "./api";
import { EmailInput } from "./EmailInput";
import { describeWait, waitSeconds, type Line } from "./queue";

const timeFormat = new Intl.DateTimeFormat("en-US", { timeStyle: "short" });

/** Where the visitor stands in a concert's line, and the form to join it: one place per email. */
export function WaitingRoomPanel(props: { concert: Concert; line: Line; join: (email: string) => void }) {
  const { concert, line, join } = props;
  const ids = useId();
  const [email, setEmail] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    join(email.trim());
  };
  const rate = concert.waitingRoom?.admitPerSecond ?? 1;
  const opensLater = new Date(concert.salesOpenAt).getTime() > Date.now();
  switch (line.state) {
    case "outside":
    case "failed":
      return (
        <div className="waiting-room" role="region" aria-label="Waiting room">
          <p>
            Tickets for this concert are sold through a waiting room
            {opensLater ? `: everyone who joins before ${timeFormat.format(new Date(concert.salesOpenAt))} gets a random place at opening.` : "."}
          </p>
          <form onSubmit={submit} aria-label="Join the line">
            <div className="field">
              <label htmlFor={`${ids}-email`}>Email</label>
              <EmailInput id={`${ids}-email`} value={email} onChange={setEmail} />
            </div>
            <p className="meta">One place per email; the tickets are booked for it.</p>
            <button type="submit" className="primary">
              Join the line
            </button>
          </form>
          {line.state === "failed" && (
            <p className="error" role="alert">
              {line.message}
            </p>
          )}
        </div>
      );
    case "joining":
      return (
        <div className="waiting-room" role="region" aria-label="Waiting room">
          <p>Joining the line…</p>
        </div>
      );
    case "waiting": {
      const position = line.ticket.position;
      return (
        <div className="waiting-room" role="region" aria-label="Waiting room" aria-live="polite">
          <p className="in-line">You are in line</p>
          {position == null ? (
            <p>Your place is drawn when sales open at {timeFormat.format(new Date(concert.salesOpenAt))}.</p>
          ) : line.ticket.paused ? (
            <p>
              Position <strong className="position">{position.toLocaleString("en-US")}</strong> · admission is
              paused: the last tickets are being paid for, and any that come back go to the line in order.
            </p>
          ) : (
            <p>
              Position <strong className="position">{position.toLocaleString("en-US")}</strong> · estimated wait{" "}
              {describeWait(waitSeconds(position, rate))}
            </p>
          )}
          <p className="meta">Keep this page open; it moves on to booking by itself.</p>
        </div>
      );
    }
    case "admitted":
      return (
        <div className="waiting-room admitted" role="region" aria-label="Waiting room" aria-live="polite">
          <p>
            <strong>It's your turn.</strong> Choose your tickets before{" "}
            {timeFormat.format(new Date(line.ticket.expiresAt ?? Date.now()))}.
          </p>
        </div>
      );
    case "soldout":
      return (
        <div className="waiting-room" role="region" aria-label="Waiting room" aria-live="polite">
          <p>
            <strong className="badge">Sold out</strong> Every ticket was sold before your turn came.
          </p>
        </div>
      );
  }
}
