// A whole disclosure through the Agents Playground's own web UI in a real browser
// (Debian's Chromium driven by playwright-core), at desktop and phone width.
//
// Usage: node tests/browser/walk.mjs <playground url> <screenshot dir>
// Prints one JSON object: {runs: [{name, taps, typed, botMessages, checks, ...}], errors}.
// Exit 0 when every check passed, 1 with the failures listed in `errors`.
//
// What it checks through the real Adaptive Cards renderer (tests/acceptance/test_browser.py
// starts the bot and the Playground and asserts on the result):
// - Back and Cancel work on an empty required box; Next still shows the box's error;
// - triage buttons: short titles shown whole, "Something else" last;
// - an answered card keeps no live button; a progress line is shown;
// - taps (card buttons) and bot messages for the walk are counted.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, shots] = process.argv.slice(2);
if (!url || !shots) {
  console.error("usage: node tests/browser/walk.mjs <playground url> <screenshot dir>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const BOT = "Test Bot";
// The Playground renders card actions as Fluent buttons holding .ac-pushButton-content.
// A choice too long for a button is a tappable box (a Container with a selectAction).
const BUTTON = "button:has(.ac-pushButton-content), .ac-selectable";
const WORDS = 'He said "don\'t tell anyone" then he hit me';
// The walk in issue 12: [what the question says, how it is answered]. `added`: a question
// the procedures gained after the issue was measured (issue 7), counted apart.
const WALK = [
  ["immediate danger", { tap: "No" }],
  ["said is responsible", { tap: "A parent, carer or family member" }],
  ["child's name", { type: "Amelia Testchild" }],
  ["year group or class", { type: "Y4" }],
  ["have a social worker", { tap: "Not known", added: true }],
  ["When did this happen", { tap: "Now" }],
  ["Where did it happen", { type: "the library" }],
  ["Who else was present", { tap: "Skip" }],
  ["in their own words", { type: WORDS }],
  ["What did you see yourself", { type: "bruise left forearm" }],
  ["see an injury", { tap: "No", added: true }],
  ["going home tonight", { tap: "No" }],
  ["Could other children", { tap: "No" }],
  ["What did you say and do", { type: "Listened and said I must tell the DSL" }],
  ["in person", { tap: "Yes" }],
  ["Check your report", { tap: "Send now" }],
];
const SIZES = [
  ["desktop", { width: 1280, height: 900 }],
  ["phone", { width: 390, height: 844 }],
];
const STEP_MS = 10_000;

const errors = [];
function check(ok, what) {
  if (!ok) errors.push(what);
  return ok;
}

const profileDir = mkdtempSync(join(tmpdir(), "sg-chromium-"));
const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
// Offline: the Playground's UI asks a CDN for fonts and animations; refuse at once.
await context.route((u) => !u.toString().startsWith(url), (route) => route.abort());

const runs = [];
try {
  for (const [name, viewport] of SIZES) {
    const page = await context.newPage();
    await page.setViewportSize(viewport);
    try {
      runs.push(await walk(page, name, name === "desktop"));
    } catch (err) {
      await page.screenshot({ path: join(shots, `${name}-failed.png`) }).catch(() => {});
      throw err;
    }
    await page.close();
  }
} catch (err) {
  errors.push(`walk stopped: ${String(err.message || err).split("\n")[0]}`);
  if (process.env.WALK_DEBUG) console.error(err.stack);
} finally {
  await context.close();
  rmSync(profileDir, { recursive: true, force: true });
}
console.log(JSON.stringify({ runs, errors }, null, 2));
process.exit(errors.length ? 1 : 0);

// ---------------------------------------------------------------------------------------

async function walk(page, name, withChecks) {
  const run = { name, taps: 0, addedTaps: 0, typed: 0, botMessages: 0, checks: [], screenshots: [] };
  let shot = 0;
  const snap = async (what) => {
    const file = join(shots, `${name}-${String(++shot).padStart(2, "0")}-${what}.png`);
    await page.screenshot({ path: file });
    run.screenshots.push(file);
  };
  await page.goto(url, { waitUntil: "load" });
  await page.getByText("Log Panel", { exact: true }).waitFor({ timeout: STEP_MS });
  await closeLogPanel(page); // the Playground's developer log covers the chat on a phone
  // The Playground starts the chat afresh on each load: wait for the bot's welcome
  // (the phone layout opens the personal chat by itself; the desktop one needs a click).
  const welcome = page.getByText("Hello. I help you").first();
  await page.waitForTimeout(300);
  if (!(await welcome.isVisible())) {
    await page.getByText("Personal Chat", { exact: true }).first().click();
  }
  await welcome.waitFor({ timeout: STEP_MS });
  const before = await botMessageCount(page);
  const box = page.locator("[role=textbox][contenteditable=true]").first();

  const type = async (text) => {
    await box.click();
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (i) await page.keyboard.press("Shift+Enter");
      await page.keyboard.type(lines[i]);
    }
    await page.keyboard.press("Enter");
    run.typed += 1;
  };
  const tap = async (card, title, counted = true) => {
    await card.getByRole("button", { name: title, exact: true }).first().click();
    if (counted) run.taps += 1;
  };

  await type("a child told me her dad hits her");
  let card = await liveCard(page, "Which of these is it?");
  await snap("triage");
  const titles = await buttonTitles(card);
  check(titles.at(-1) === "Something else", `${name}: triage ends with "Something else": ${titles}`);
  check(titles.includes("A child told me something"), `${name}: triage offers disclosure`);
  const cut = await truncatedButtons(card);
  check(cut.length === 0, `${name}: triage buttons cut off: ${cut}`);
  await tap(card, "A child told me something");

  let asked = 0;
  for (const [asks, how] of WALK) {
    // A question the walk does not know (a flow grew) is answered "Not known" or "No",
    // and counted: the tap and message budget is for the flow as it ships.
    for (;;) {
      card = await nextQuestion(page, asked);
      const text = await card.innerText();
      if (text.includes(asks)) break;
      const fallback = ["Not known", "No", "Skip"];
      const titles = await buttonTitles(card);
      const pick = fallback.find((t) => titles.includes(t));
      check(pick, `${name}: a question the walk cannot answer: ${text.slice(0, 200)}`);
      if (!pick) throw new Error("unknown question");
      run.unknown = [...(run.unknown || []), text.split("\n").find((l) => l.endsWith("?"))];
      await tap(card, pick, false);
      run.addedTaps += 1;
      asked += 1;
    }
    asked += 1;
    const text = await card.innerText();
    if (asks !== "Check your report") {
      check(/Question \d+ of \d+ - /.test(text), `${name}: no progress line at "${asks}"`);
    }
    if (withChecks && asks === "child's name") await navigationChecks(page, card, run, tap);
    const cutHere = await truncatedButtons(card);
    check(cutHere.length === 0, `${name}: buttons cut off at "${asks}": ${cutHere}`);
    const shotAt = ["immediate danger", "said is responsible", "have a social worker"];
    if ([...shotAt, "When did this happen", "Check your report"].includes(asks)) {
      await snap(asks.split(" ").slice(0, 2).join("-").toLowerCase());
    }
    if (asks === "in their own words") {
      await box.click();
      await snap("typing");
    }
    if (how.tap) await tap(await liveCard(page, asks), how.tap, !how.added);
    else await type(how.type);
    if (how.added) run.addedTaps += 1;
    await page.waitForTimeout(50);
  }

  await page.getByText("Delivered at", { exact: false }).last().waitFor({ timeout: STEP_MS });
  await page.waitForTimeout(300);
  await snap("delivered");
  run.botMessages = (await botMessageCount(page)) - before;
  // Every answered card was replaced: nothing in the chat can still be pressed.
  const live = await page.locator(`.ac-adaptiveCard ${BUTTON}:visible`).count();
  check(live === 0, `${name}: ${live} button(s) still live on answered cards`);
  const answered = await page.getByText("✓ Child: Amelia Testchild").count();
  check(answered >= 1, `${name}: no read-only line of what was answered`);
  return run;
}

async function navigationChecks(page, card, run, tap) {
  // An empty required box: Next shows the box's error and sends nothing ...
  const messages = await botMessageCount(page);
  await tap(card, "Next", false);
  const error = page.getByText("Please type your answer.").first();
  const shown = await error.isVisible().catch(() => false);
  run.checks.push(check(shown, "Next on an empty required box shows its error") && "next-validates");
  await page.waitForTimeout(300);
  check((await botMessageCount(page)) === messages, "Next on an empty box reached the bot");
  // ... Back goes back whatever the box holds ...
  await tap(card, "Back", false);
  const back = await liveCard(page, "said is responsible");
  run.checks.push("back-on-empty-box");
  await tap(back, "A parent, carer or family member", false);
  // ... and so does Cancel (then "No, carry on").
  card = await liveCard(page, "child's name");
  await tap(card, "Cancel", false);
  const sure = await liveCard(page, "Cancel this report?");
  run.checks.push("cancel-on-empty-box");
  await tap(sure, "No, carry on", false);
  await liveCard(page, "child's name");
}

// The newest live card once it asks something after question number `asked`.
async function nextQuestion(page, asked) {
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    const card = await newestLive(page);
    if (card) {
      const text = await card.innerText();
      const number = Number((text.match(/Question (\d+) of/) || [])[1] || 0);
      if (number > asked || text.includes("Check your report")) return card;
    }
    await page.waitForTimeout(50);
  }
  throw new Error(`no question after number ${asked} within ${STEP_MS / 1000}s`);
}

async function newestLive(page) {
  const cards = page.locator(".ac-adaptiveCard");
  const top = await cards.evaluateAll((els) =>
    els.map((e, i) => (e.parentElement.closest(".ac-adaptiveCard") ? -1 : i)).filter((i) => i >= 0),
  );
  for (const i of top.reverse()) {
    const card = cards.nth(i);
    if ((await card.locator(BUTTON).count()) > 0) return card;
  }
  return null;
}

// The last top-level card that still has a button and shows `text`.
async function liveCard(page, text) {
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    const cards = page.locator(".ac-adaptiveCard");
    const top = await cards.evaluateAll((els) =>
      els.map((e, i) => (e.parentElement.closest(".ac-adaptiveCard") ? -1 : i)).filter((i) => i >= 0),
    );
    for (const i of top.reverse()) {
      const card = cards.nth(i);
      if ((await card.locator(BUTTON).count()) === 0) continue;
      if ((await card.innerText()).includes(text)) {
        await card.scrollIntoViewIfNeeded();
        return card;
      }
      break; // only the newest live card counts
    }
    await page.waitForTimeout(50);
  }
  throw new Error(`no live card saying "${text}" within ${STEP_MS / 1000}s`);
}

async function buttonTitles(card) {
  return card.locator(BUTTON).evaluateAll((els) => els.map((e) => e.innerText.trim()));
}

async function truncatedButtons(card) {
  return card.locator(BUTTON).evaluateAll((els) =>
    els
      .filter((e) => [e, ...e.querySelectorAll("*")].some((x) => x.scrollWidth > x.clientWidth + 1))
      .map((e) => e.innerText.trim()),
  );
}

async function closeLogPanel(page) {
  await page.evaluate(() => {
    const title = [...document.querySelectorAll("*")].find(
      (e) => e.childElementCount === 0 && e.textContent.trim() === "Log Panel",
    );
    for (let node = title; node; node = node.parentElement) {
      const buttons = node.querySelectorAll("button");
      if (buttons.length) return buttons[buttons.length - 1].click(); // its close (X) button
    }
  });
}

async function botMessageCount(page) {
  return page.locator('[aria-label="Message author"]', { hasText: BOT }).count();
}
