import { useId, useState, type FormEvent } from "react";
import { useMutation, useQuery } from "@tanstack/react-query";
import { Link, Navigate, useSearchParams } from "react-router-dom";
import { ApiProblem, requestSignInLink } from "./api";
import { EmailInput } from "./EmailInput";
import { signIn, useCustomer } from "./session";

/** `/signin`: asks for a link by email; `/signin?token=…` (the mailed link) spends it. */
export function SignIn() {
  const [params] = useSearchParams();
  const token = params.get("token");
  return (
    <section aria-labelledby="signin-title" className="narrow">
      <h1 id="signin-title">Sign in</h1>
      {token ? <SpendLink token={token} /> : <AskForLink />}
    </section>
  );
}

function AskForLink() {
  const ids = useId();
  const customer = useCustomer();
  const [email, setEmail] = useState("");
  const request = useMutation({ mutationFn: requestSignInLink });
  const problem = request.error instanceof ApiProblem ? request.error : undefined;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!request.isPending) request.mutate(email.trim());
  };
  if (customer) {
    return (
      <p>
        Signed in as <strong>{customer.email}</strong>. <Link to="/bookings">See your bookings</Link>.
      </p>
    );
  }
  if (request.isSuccess) {
    return (
      <div className="card" role="status">
        <p>
          <strong>Check your mail.</strong> If {email.trim()} can sign in, a link is on its way. It works once, within 15
          minutes.
        </p>
        <button type="button" onClick={() => request.reset()}>
          Use another email
        </button>
      </div>
    );
  }
  const emailError = problem?.forField("email");
  return (
    <form className="card" onSubmit={submit} noValidate aria-label="Sign in by email">
      <p className="meta">No password: we mail you a link that signs you in, and shows every booking made with your email.</p>
      <div className="field">
        <label htmlFor={`${ids}-email`}>Email</label>
        <EmailInput id={`${ids}-email`} value={email} onChange={setEmail} errorId={emailError ? `${ids}-error` : undefined} />
        {emailError && (
          <p className="error" id={`${ids}-error`}>
            {emailError}
          </p>
        )}
      </div>
      <button type="submit" className="primary" disabled={request.isPending}>
        {request.isPending ? "Sending…" : "Mail me a link"}
      </button>
      {problem && !emailError && (
        <p className="error" role="alert">
          {problem.message}
        </p>
      )}
    </form>
  );
}

function SpendLink(props: { token: string }) {
  // A query, not an effect: a token works once, and the query runs once however often the page
  // renders.
  const session = useQuery({
    queryKey: ["sign-in", props.token],
    queryFn: () => signIn(props.token),
    retry: false,
    staleTime: Infinity,
    gcTime: Infinity,
  });
  if (session.isSuccess) return <Navigate to="/bookings" replace />;
  if (session.isError) {
    return (
      <div className="card" role="alert">
        <p className="error">
          {session.error instanceof ApiProblem && session.error.code === "TokenRefused"
            ? "This link has been used or has expired."
            : session.error.message}
        </p>
        <Link to="/signin">Ask for a new link</Link>
      </div>
    );
  }
  return <p role="status">Signing you in…</p>;
}
