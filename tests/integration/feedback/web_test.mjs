// Drives the rater web page in Debian's headless chromium (playwright-core, pinned in the root
// package.json): signs in with a token, answers items with the keyboard on a phone-sized screen.
//
//   node web_test.mjs URL TOKEN     prints one JSON line: what the page showed; exit 1 on failure
import { chromium } from "playwright-core";

const [url, token] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const result = { prompts: [], images: 0, texts: [], count: "", errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") result.errors.push(m.text()); });
  let leaseCalls = 0;
  page.on("request", (r) => { if (r.url().endsWith("/api/v1/Lease")) leaseCalls += 1; });
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#signin");
  // Three items: answer "2", skip with "s", answer "3"; each time wait for the next lease. The
  // page prefetches: one Lease brought all three.
  for (const key of ["2", "s", "3"]) {
    result.lease_calls = leaseCalls;
    await page.waitForSelector("#answers button", { timeout: 10000 });
    result.prompts.push(await page.textContent("#prompt"));
    if (await page.$("#payload img")) result.images += 1;
    const text = await page.$("#payload pre");
    if (text) result.texts.push(await text.textContent());
    const lease = await page.getAttribute("#item", "data-lease");
    await page.keyboard.press(key);
    await page.waitForFunction(
      (before) => document.querySelector("#item").dataset.lease !== before ||
                  !document.querySelector("#empty").hidden,
      lease, { timeout: 10000 });
  }
  // The fourth item came with a second Lease (the fifth prefetched with it).
  await page.waitForSelector("#item:not([hidden])", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#count").textContent === "2",
                             null, { timeout: 10000 });
  result.count = await page.textContent("#count");
  result.agreement = await page.textContent("#agreement");
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  result.fits_phone = width <= 390;
  // Signing out releases the item on screen and the prefetched one.
  await Promise.all([page.waitForEvent("load"), page.click("#logout")]);
  result.lease_calls_at_logout = leaseCalls;
} catch (e) {
  result.errors.push(String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.errors.length ? 1 : 0);
