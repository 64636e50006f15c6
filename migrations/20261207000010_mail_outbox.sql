-- The mail outbox: a row is written in the transaction of the change that causes the mail, and
-- the settler's sender delivers it. `message_id` is fixed when the row is written, so a resend
-- after a crash carries the same Message-ID.
CREATE TABLE mail_outbox (
    id              uuid PRIMARY KEY,
    -- `<cause-id.kind@host>`.
    message_id      text NOT NULL UNIQUE,
    -- `signin`, ...
    kind            text NOT NULL,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    -- Refused for good: the server's permanent refusals outlasted every attempt.
    given_up_at     timestamptz
);

-- What the sender looks for: unsent mails, soonest due first.
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND given_up_at IS NULL;
