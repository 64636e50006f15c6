import { lazy, Suspense } from "react";
import { NavLink, Route, Routes, useNavigate } from "react-router-dom";
import { Catalog } from "./Catalog";
import { MyBookings } from "./MyBookings";
import { signOut, useCustomer } from "./session";
import { SignIn } from "./SignIn";

// The charts library is most of the bundle; buyers on the catalog never download it.
const Dashboard = lazy(() => import("./Dashboard").then((module) => ({ default: module.Dashboard })));

export function App() {
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Tickets</span>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Concerts
          </NavLink>
          <NavLink to="/analytics">Analytics</NavLink>
          <NavLink to="/bookings">My bookings</NavLink>
        </nav>
        <Account />
      </header>
      <main id="main">
        <Routes>
          <Route path="/" element={<Catalog />} />
          <Route
            path="/analytics"
            element={
              <Suspense fallback={<p>Loading…</p>}>
                <Dashboard />
              </Suspense>
            }
          />
          <Route path="/signin" element={<SignIn />} />
          <Route path="/bookings" element={<MyBookings />} />
          <Route path="*" element={<p>This page does not exist.</p>} />
        </Routes>
      </main>
    </>
  );
}

/** Who is signed in, and the way out; or the way in. */
function Account() {
  const customer = useCustomer();
  const navigate = useNavigate();
  if (!customer) {
    return (
      <NavLink to="/signin" className="account">
        Sign in
      </NavLink>
    );
  }
  return (
    <span className="account">
      <span className="meta">{customer.email}</span>
      <button type="button" onClick={() => signOut().then(() => navigate("/"))}>
        Sign out
      </button>
    </span>
  );
}
