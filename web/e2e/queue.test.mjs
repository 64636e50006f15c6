// The waiting room end to end, in Debian's Chromium against a running gateway and settler (see
// booking.test.mjs): two pages in line for one ticket; the first is admitted and books it through
// the form; the second sees its position move, then "Sold out".
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.E2E_URL ?? "http://127.0.0.1:8000";
const adminToken = process.env.ADMIN_TOKEN;
const TIMEOUT = 15_000;

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
});

after(async () => {
  await browser?.close();
});

async function admin(path, body) {
  assert.ok(adminToken, "ADMIN_TOKEN must be set");
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 201, text);
  return JSON.parse(text);
}

function room(page, concert) {
  return page.locator("article", { hasText: concert }).getByRole("region", { name: "Waiting room" });
}

async function joinLine(page, concert, email) {
  await page.goto(`${base}/`);
  await room(page, concert).getByLabel("Email").fill(email);
  await room(page, concert).getByRole("button", { name: "Join the line" }).click();
  await room(page, concert).getByText(/You are in line|your turn/).waitFor({ timeout: TIMEOUT });
}

test("the first in line books the last ticket; the next one sees the line move, then sold out", async () => {
  const concert = "Midnight Queue";
  const created = await admin("/api/admin/concerts", {
    name: concert,
    location: "Harbour Hall, Porto",
    date: "2099-07-01T20:00:00Z",
    waitingRoom: { admitPerSecond: 1 },
    ticketTiers: [{ name: "Front", price: 30, totalQuantity: 1 }],
  });
  const first = await browser.newPage();
  const second = await browser.newPage();
  await joinLine(first, concert, "first@example.com");
  // Two more people join between them, through the API, and never book.
  for (const email of ["filler-1@example.com", "filler-2@example.com"]) {
    const response = await fetch(`${base}/api/concerts/${created.id}/queue`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userEmail: email }),
    });
    assert.equal(response.status, 201);
  }
  await joinLine(second, concert, "second@example.com");
  const positions = new Set();
  const watching = (async () => {
    const position = room(second, concert).locator(".position");
    while (!(await room(second, concert).getByText("Sold out").isVisible())) {
      // The position may go (sold out) between two looks: a look that finds none is no move.
      const text = await position.textContent({ timeout: 200 }).catch(() => null);
      if (text) positions.add(text);
      await second.waitForTimeout(100);
    }
  })();

  await room(first, concert).getByText("It's your turn.").waitFor({ timeout: TIMEOUT });
  // Booking the last ticket pauses admission: the second page must have seen the line move once
  // before it goes (a filler admitted at 1/s), or there is no move left for it to see.
  const deadline = Date.now() + TIMEOUT;
  while (positions.size < 2 && Date.now() < deadline) await first.waitForTimeout(50);
  const row = first.locator("article", { hasText: concert }).locator('li[data-tier="Front"]');
  await row.getByRole("button", { name: "Book" }).click();
  const form = first.getByRole("form", { name: "Book Front" });
  // The admission books for the email that joined: the form holds it.
  assert.equal(await form.getByLabel("Email").inputValue(), "first@example.com");
  await form.getByRole("button", { name: "Book for $30.00" }).click();
  await first.getByRole("status").filter({ hasText: "Booking" }).getByText(/Confirmed/).waitFor({ timeout: TIMEOUT });

  await room(second, concert).getByText("Sold out").waitFor({ timeout: TIMEOUT });
  await watching;
  assert.ok(positions.size >= 2, `the second page saw its position move: ${[...positions]}`);
  const book = second.locator("article", { hasText: concert }).locator('li[data-tier="Front"]').getByRole("button", { name: "Book" });
  assert.equal(await book.isDisabled(), true, "no booking without an admission");
  await first.close();
  await second.close();
});
