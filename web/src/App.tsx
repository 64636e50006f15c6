import { lazy, Suspense } from "react";
import { NavLink, Route, Routes } from "react-router-dom";
import { Catalog } from "./Catalog";

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
        </nav>
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
          <Route path="*" element={<p>This page does not exist.</p>} />
        </Routes>
      </main>
    </>
  );
}
