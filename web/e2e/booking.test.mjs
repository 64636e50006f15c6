// End to end against a running gateway and settler (real Redis and Postgres), in Debian's
// Chromium: `make web-e2e` starts them with a database and key prefix of their own.
//
// E2E_URL: the gateway; ADMIN_TOKEN: to create the concerts the tests book; MAILDIR: the maildir
// the settler's SMTP server writes; CHROMIUM: the browser (default /usr/bin/chromium);
// SCREENSHOTS: a directory to save the pages into.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.E2E_URL ?? "http://127.0.0.1:8000";
const adminToken = process.env.ADMIN_TOKEN;
const screenshots = process.env.SCREENSHOTS;
const TIMEOUT = 15_000;

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  if (screenshots) mkdirSync(screenshots, { recursive: true });
});

after(async () => {
  await browser?.close();
});

async function shoot(page, name) {
  if (screenshots) await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

/** Creates a concert through the admin API; its tiers as [name, price, total]. */
async function createConcert(name, tiers) {
  assert.ok(adminToken, "ADMIN_TOKEN must be set");
  const response = await fetch(`${base}/api/admin/concerts`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({
      name,
      description: "An evening under the lights.",
      location: "Riverside Arena, Lisbon",
      date: "2099-06-01T20:00:00Z",
      ticketTiers: tiers.map(([tierName, price, totalQuantity]) => ({ name: tierName, price, totalQuantity })),
    }),
  });
  assert.equal(response.status, 201, await response.text());
}

function tierRow(page, concert, tier) {
  return page.locator("article", { hasText: concert }).locator(`li[data-tier="${tier}"]`);
}

async function openCatalog(page) {
  await page.goto(`${base}/`);
  await page.getByText("Live availability").waitFor({ timeout: TIMEOUT });
}

/** Waits until `row` says `text`, without reloading the page. */
async function waitForText(row, text) {
  await row.getByText(text, { exact: true }).waitFor({ timeout: TIMEOUT });
}

test("a buyer books with the keyboard, sees it confirmed; another page sees the stock drop; the dashboard shows the sale", async () => {
  const concert = "Aurora Nights";
  await createConcert(concert, [
    ["Balcony", 25, 40],
    ["Pit", 60, 10],
  ]);
  // Charts drawn at once, not mid-animation, for the screenshots.
  const buyer = await (await browser.newContext({ reducedMotion: "reduce" })).newPage();
  const watcher = await browser.newPage();
  await openCatalog(buyer);
  await openCatalog(watcher);
  await waitForText(tierRow(watcher, concert, "Balcony").locator(".left"), "40 left");
  await shoot(buyer, "catalog");

  await tierRow(buyer, concert, "Balcony").getByRole("button", { name: "Book" }).focus();
  await buyer.keyboard.press("Enter");
  const form = buyer.getByRole("form", { name: "Book Balcony" });
  await form.getByLabel("Tickets").focus();
  await buyer.keyboard.press("ArrowDown");
  await buyer.keyboard.press("Tab");
  await buyer.keyboard.type("ada@example.com");
  await form.getByText("$50.00", { exact: true }).waitFor();
  await buyer.keyboard.press("Enter");

  const status = buyer.getByRole("status").filter({ hasText: "Booking" });
  await status.getByText(/Pending|Confirmed/).waitFor({ timeout: TIMEOUT });
  await status.getByText(/Confirmed/).waitFor({ timeout: TIMEOUT });
  await shoot(buyer, "booking");

  await waitForText(tierRow(watcher, concert, "Balcony").locator(".left"), "38 left");
  await waitForText(tierRow(watcher, concert, "Pit").locator(".left"), "10 left");

  await buyer.goto(`${base}/analytics`);
  await buyer.getByTestId("tickets-sold").getByText("2", { exact: true }).waitFor({ timeout: TIMEOUT });
  await buyer.getByTestId("total-revenue").getByText("$50.00").waitFor({ timeout: TIMEOUT });
  await buyer.locator(".recharts-surface").first().waitFor();
  await buyer.context().close();
  await watcher.close();
});

test("a tier shows sold out on every page the moment its last ticket goes", async () => {
  const concert = "Last Call Trio";
  await createConcert(concert, [["Front", 80, 1]]);
  const buyer = await browser.newPage();
  const watcher = await browser.newPage();
  await openCatalog(buyer);
  await openCatalog(watcher);
  await waitForText(tierRow(watcher, concert, "Front").locator(".left"), "1 left");

  await tierRow(buyer, concert, "Front").getByRole("button", { name: "Book" }).click();
  const form = buyer.getByRole("form", { name: "Book Front" });
  await form.getByLabel("Email").fill("grace@example.com");
  await form.getByRole("button", { name: "Book for $80.00" }).click();
  await buyer.getByText(/Pending|Confirmed/).first().waitFor({ timeout: TIMEOUT });

  await waitForText(tierRow(watcher, concert, "Front"), "Sold out");
  assert.equal(await tierRow(watcher, concert, "Front").getByRole("button", { name: "Book" }).isDisabled(), true);
  await buyer.close();
  await watcher.close();
});

test("an error of the API shows next to the field that caused it", async () => {
  const page = await browser.newPage();
  await openCatalog(page);
  await tierRow(page, "Aurora Nights", "Pit").getByRole("button", { name: "Book" }).click();
  const form = page.getByRole("form", { name: "Book Pit" });
  await form.getByLabel("Email").fill("not-an-email");
  await form.getByRole("button", { name: /Book for/ }).click();
  const email = form.getByLabel("Email");
  await form.locator(".field .error").waitFor({ timeout: TIMEOUT });
  assert.equal(await email.getAttribute("aria-invalid"), "true");
  await page.close();
});

test("the dashboard adds up every sale and filters by concert", async () => {
  const page = await (await browser.newContext({ reducedMotion: "reduce" })).newPage();
  await page.goto(`${base}/analytics`);
  // 2 x $25 from the first test, 1 x $80 from the sold-out one, once the settler confirmed it.
  await page.getByTestId("total-revenue").getByText("$130.00").waitFor({ timeout: TIMEOUT });
  await page.getByTestId("tickets-sold").getByText("3", { exact: true }).waitFor();
  await page.getByLabel("Group by").selectOption("hour");
  await page.getByText("Front · Last Call Trio").waitFor();
  await shoot(page, "dashboard");

  await page.getByLabel("Concert").selectOption({ label: "Last Call Trio" });
  await page.getByTestId("total-revenue").getByText("$80.00").waitFor({ timeout: TIMEOUT });
  await page.getByTestId("tickets-sold").getByText("1", { exact: true }).waitFor();
  assert.equal(await page.getByText("Balcony · Aurora Nights").count(), 0);
  await page.context().close();
});

/** The sign-in link the mail catcher (MAILDIR, a maildir aiosmtpd writes) received for `email`. */
async function mailedLink(email) {
  const maildir = process.env.MAILDIR;
  assert.ok(maildir, "MAILDIR must be set");
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    for (const name of existsSync(join(maildir, "new")) ? readdirSync(join(maildir, "new")) : []) {
      // Quoted-printable: soft line breaks and `=XX` escapes undone.
      const text = readFileSync(join(maildir, "new", name), "utf8")
        .replace(/=\r?\n/g, "")
        .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
      const link = text.match(/https?:\/\/\S+\/signin\?token=[0-9a-f]{64}/);
      if (link && new RegExp(`^To: ${email}`, "mi").test(text)) return link[0];
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`no sign-in mail reached ${email}`);
}

test("a guest books, signs in from the mailed link, finds that booking, books as themselves, and signs out", async () => {
  const concert = "Members Evening";
  await createConcert(concert, [["Stalls", 30, 20]]);
  const page = await browser.newPage();
  const email = `grace.${Date.now()}@example.com`;
  await openCatalog(page);
  await tierRow(page, concert, "Stalls").getByRole("button", { name: "Book" }).click();
  const guestForm = page.getByRole("form", { name: "Book Stalls" });
  await guestForm.getByLabel("Email").fill(email);
  await guestForm.getByRole("button", { name: "Book for $30.00" }).click();
  await page.getByRole("status").filter({ hasText: "Booking" }).getByText(/Confirmed/).waitFor({ timeout: TIMEOUT });

  await page.getByRole("link", { name: "Sign in" }).click();
  await page.getByRole("textbox", { name: "Email" }).fill(email);
  await page.getByRole("button", { name: "Mail me a link" }).click();
  await page.getByText("Check your mail.").waitFor({ timeout: TIMEOUT });
  const link = await mailedLink(email);
  assert.ok(link.startsWith(`${base}/signin?token=`), link);
  await page.goto(link);
  await page.getByRole("heading", { name: "My bookings" }).waitFor({ timeout: TIMEOUT });
  const bookings = page.locator("li", { hasText: concert });
  await bookings.first().getByText("Confirmed").waitFor({ timeout: TIMEOUT });
  assert.equal(await bookings.count(), 1);

  await page.getByRole("link", { name: "Concerts" }).click();
  await page.getByText("Live availability").waitFor({ timeout: TIMEOUT });
  await tierRow(page, concert, "Stalls").getByRole("button", { name: "Book" }).click();
  const form = page.getByRole("form", { name: "Book Stalls" });
  await form.getByLabel("Tickets").selectOption("2");
  const field = form.getByLabel("Email");
  assert.equal(await field.inputValue(), email);
  assert.equal(await field.getAttribute("readonly"), "");
  await form.getByRole("button", { name: "Book for $60.00" }).click();
  await page.getByRole("status").filter({ hasText: "Booking" }).getByText(/Confirmed/).waitFor({ timeout: TIMEOUT });

  await page.getByRole("link", { name: "My bookings" }).click();
  await bookings.nth(1).waitFor({ timeout: TIMEOUT });
  assert.match(await bookings.nth(0).innerText(), /2 × Stalls, \$60\.00 · Confirmed/);
  assert.match(await bookings.nth(1).innerText(), /1 × Stalls, \$30\.00 · Confirmed/);
  await shoot(page, "my-bookings");

  // The link worked once.
  await page.goto(link);
  await page.getByText("This link has been used or has expired.").waitFor({ timeout: TIMEOUT });

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("link", { name: "Sign in" }).waitFor({ timeout: TIMEOUT });
  await page.goto(`${base}/bookings`);
  await page.getByText("to see your bookings.").waitFor({ timeout: TIMEOUT });
  await page.close();
});

test("the catalog fits a phone in the dark", async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  const page = await context.newPage();
  await openCatalog(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, "rgb(17, 19, 24)");
  await shoot(page, "catalog-phone-dark");
  await context.close();
});
