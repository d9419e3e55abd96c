// Drives two feature-rule questions on the rater page in Debian's headless chromium, on a
// phone-sized screen: on the image, taps one cell, marks another from the keyboard (focus,
// Space), confirms with "c"; on the next item, a list of words, does the same with words. With
// "mask", one per-item mask question instead: taps cell 3 and confirms.
//
//   node web_features_test.mjs URL TOKEN [mask]   prints one JSON line: what the page showed; exit 1 on failure
import { chromium } from "playwright-core";

const [url, token, mode] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const result = { errors: [] };

// A per-item mask question: tap cell 3, confirm.
async function markOneCell(page) {
  await page.tap('.cell[data-cell="3"]');
  await page.keyboard.press("c");
  await page.waitForFunction(() => document.querySelector("#count").textContent === "1",
                             null, { timeout: 10000 });
  result.count = await page.textContent("#count");
}

// The two rule questions: cells on the image, then words.
async function rateRules(page) {
  // An empty rule is refused on the page, before anything is sent.
  await page.keyboard.press("c");
  result.empty_refused = (await page.textContent("#status")).includes("at least one cell");
  await page.tap('.cell[data-cell="0"]');
  await page.focus('.cell[data-cell="48"]');
  await page.keyboard.press(" ");
  result.pressed = await page.$$eval('.cell[aria-pressed="true"]',
                                     (cells) => cells.map((c) => Number(c.dataset.cell)));
  const box = await page.locator('.cell[data-cell="0"]').boundingBox();
  result.cell_px = box ? Math.round(box.width) : 0;
  await page.keyboard.press("c");
  await page.waitForFunction(() => document.querySelector("#count").textContent === "1",
                             null, { timeout: 10000 });
  result.count = await page.textContent("#count");
  result.fits_phone = (await page.evaluate(() => document.documentElement.scrollWidth)) <= 390;
  await page.waitForSelector(".word", { timeout: 10000 });
  result.words = await page.$$eval(".word", (words) => words.map((w) => w.textContent));
  await page.tap('.word[data-cell="0"]');
  await page.focus('.word[data-cell="2"]');
  await page.keyboard.press(" ");
  result.pressed_words = await page.$$eval('.word[aria-pressed="true"]',
                                           (words) => words.map((w) => Number(w.dataset.cell)));
  const word = await page.locator('.word[data-cell="0"]').boundingBox();
  result.word_px = word ? Math.round(word.height) : 0;
  result.words_fit_phone =
    (await page.evaluate(() => document.documentElement.scrollWidth)) <= 390;
  await page.keyboard.press("c");
  await page.waitForFunction(() => document.querySelector("#count").textContent === "2",
                             null, { timeout: 10000 });
  result.count_after_words = await page.textContent("#count");
}

try {
  const page = await browser.newPage(
    { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") result.errors.push(m.text()); });
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#signin");
  await page.waitForSelector(".cell", { timeout: 10000 });
  result.prompt = await page.textContent("#prompt");
  result.cells = await page.locator(".cell").count();
  // The share of the picture's width the cells cover: one half on a two-panel picture.
  const grid = await page.locator(".cells").boundingBox();
  const picture = await page.locator(".cells-frame img").boundingBox();
  result.grid_share = grid && picture ? Math.round((100 * grid.width) / picture.width) / 100 : 0;
  await (mode === "mask" ? markOneCell(page) : rateRules(page));
} catch (e) {
  result.errors.push(String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.errors.length ? 1 : 0);
