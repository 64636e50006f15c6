// The API's document, rendered at /docs with nothing fetched from anywhere but the gateway.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.E2E_URL ?? "http://127.0.0.1:8000";
const screenshots = process.env.SCREENSHOTS;

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

test("/docs renders every operation without the network", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const origin = new URL(base).origin;
  const elsewhere = [];
  // Anything not from the gateway is refused, and remembered: the page must need none of it.
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin)) return route.continue();
    elsewhere.push(url);
    return route.abort();
  });
  await page.goto(`${base}/docs`);
  await page.getByText("Tickets", { exact: false }).first().waitFor({ timeout: 15_000 });
  for (const path of ["/api/bookings", "/api/concerts/{id}", "/api/analytics/dashboard", "/api/admin/concerts"]) {
    await page.locator(".opblock-summary-path", { hasText: path }).first().waitFor({ timeout: 15_000 });
  }
  assert.deepEqual(elsewhere, [], "fetched from elsewhere");
  if (screenshots) await page.screenshot({ path: join(screenshots, "docs.png"), fullPage: false });
  await page.close();
});
