// A purchase attempt: what the person chose and the idempotency key made for it. Retrying the same
// attempt (a double click, a network retry, "try again") reuses the key, so it can never book twice;
// changing what is bought starts a new attempt with a new key.

export interface Choice {
  tierId: string;
  quantity: number;
  email: string;
}

export interface Attempt extends Choice {
  idempotencyKey: string;
}

function sameChoice(a: Choice, b: Choice): boolean {
  return a.tierId === b.tierId && a.quantity === b.quantity && a.email.trim() === b.email.trim();
}

/** The attempt to send for `choice`: the previous one if nothing changed, else a new one. */
export function attemptFor(previous: Attempt | undefined, choice: Choice, newKey: () => string = () => crypto.randomUUID()): Attempt {
  if (previous && sameChoice(previous, choice)) {
    return previous;
  }
  return { ...choice, email: choice.email.trim(), idempotencyKey: newKey() };
}
