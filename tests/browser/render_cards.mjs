// Golden check of card designs with the official Adaptive Cards renderer (the `adaptivecards`
// bundle) in headless Chromium (Debian's, driven by playwright-core), with the Microsoft Teams
// light theme's host config (tests/browser/teams-light-hostconfig.json).
//
// Usage: node tests/browser/render_cards.mjs <cards.json> <screenshot dir>
// cards.json: [{name, card, widths: [px...], shoot: bool}]
// Prints one JSON object: {results: [{name, width, warnings, truncated, lowContrast,
// screenshot}], errors}. Exit 0 when every card rendered with no renderer warning, nothing
// cut off and every text at WCAG AA contrast; 1 otherwise (the problems are listed).
//
// What "cut off" means here: any element whose text overflows its own box (a button title
// cut by the action bar, a no-wrap TextBlock, a column squeezed below its words), checked on
// the rendered DOM. Contrast: each text's colour, composited over the nearest opaque
// background, against WCAG 2 AA (4.5:1; 3:1 for large text: 24px, or 18.66px bold).
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [cardsFile, shots] = process.argv.slice(2);
if (!cardsFile || !shots) {
  console.error("usage: node tests/browser/render_cards.mjs <cards.json> <screenshot dir>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const designs = JSON.parse(readFileSync(cardsFile, "utf8"));
const hostConfig = JSON.parse(readFileSync(join(here, "teams-light-hostconfig.json"), "utf8"));
const bundle = join(here, "..", "..", "node_modules", "adaptivecards", "dist", "adaptivecards.min.js");

const errors = [];
const results = [];
const profileDir = mkdtempSync(join(tmpdir(), "sg-cards-"));
const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
});
try {
  const page = await context.newPage();
  await page.route("**/*", (route) => route.abort()); // offline: nothing is fetched
  await page.setContent(
    `<!doctype html><html><head><style>
       body { margin: 0; background: #f5f5f5; font-family: "Segoe UI", Arial, sans-serif; }
       #frame { padding: 8px; }
       #host { background: #ffffff; border-radius: 4px; }
       /* Teams draws actions as Fluent buttons: white, grey border, dark text; positive and
          destructive as filled. Approximated so their contrast is checked too. */
       .ac-pushButton { background: #ffffff; color: #242424; border: 1px solid #d1d1d1;
         border-radius: 4px; padding: 5px 12px; font: 600 14px "Segoe UI", Arial, sans-serif;
         overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-height: 32px; }
       .ac-pushButton.style-positive { background: #5b5fc7; color: #ffffff; border-color: #5b5fc7; }
       .ac-pushButton.style-destructive { background: #c4314b; color: #ffffff; border-color: #c4314b; }
     </style></head><body><div id="frame"><div id="host"></div></div></body></html>`,
  );
  await page.addScriptTag({ path: bundle });
  for (const design of designs) {
    for (const width of design.widths) {
      await page.setViewportSize({ width, height: 900 });
      const result = await page.evaluate(render, { card: design.card, hostConfig });
      const entry = { name: design.name, width, ...result, screenshot: null };
      if (design.shoot) {
        const file = join(shots, `${design.name}-${width}.png`);
        await page.locator("#frame").screenshot({ path: file });
        entry.screenshot = file;
      }
      for (const w of result.warnings) errors.push(`${design.name} @${width}px: renderer: ${w}`);
      for (const t of result.truncated) errors.push(`${design.name} @${width}px: cut off: ${t}`);
      for (const c of result.lowContrast) errors.push(`${design.name} @${width}px: contrast: ${c}`);
      results.push(entry);
    }
  }
} catch (err) {
  errors.push(`render stopped: ${String(err.message || err).split("\n")[0]}`);
} finally {
  await context.close();
  rmSync(profileDir, { recursive: true, force: true });
}
console.log(JSON.stringify({ results, errors }, null, 2));
process.exit(errors.length ? 1 : 0);

// Runs in the page: render one card into #host and report what a reader would miss.
function render({ card, hostConfig }) {
  const AC = window.AdaptiveCards;
  const host = document.getElementById("host");
  host.innerHTML = "";
  const context = new AC.SerializationContext(AC.Versions.v1_5);
  const adaptive = new AC.AdaptiveCard();
  adaptive.hostConfig = new AC.HostConfig(hostConfig);
  // Teams shows a mention as the person's name.
  const json = JSON.parse(JSON.stringify(card).replace(/<at>(.*?)<\/at>/g, "$1"));
  adaptive.parse(json, context);
  const warnings = [];
  for (let i = 0; i < context.eventCount; i++) warnings.push(context.getEventAt(i).message);
  for (const e of adaptive.validateProperties().validationEvents) warnings.push(e.message);
  const rendered = adaptive.render();
  if (!rendered) return { warnings: [...warnings, "nothing rendered"], truncated: [], lowContrast: [] };
  host.appendChild(rendered);
  // Expand every Action.ShowCard so what it holds is checked too.
  for (const button of host.querySelectorAll(".ac-pushButton.expandable")) button.click();

  const truncated = [];
  const lowContrast = [];
  const texts = [];
  const walker = document.createTreeWalker(host, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.textContent.trim()) texts.push(node);
  }
  const seen = new Set();
  for (const node of texts) {
    const el = node.parentElement;
    if (seen.has(el) || el.offsetParent === null) continue;
    seen.add(el);
    const label = node.textContent.trim().slice(0, 60);
    // Cut off: the element (or the button holding it) is narrower than its own text.
    for (let box = el; box && box !== host; box = box.parentElement) {
      const style = getComputedStyle(box);
      const clips = style.overflow !== "visible" || style.textOverflow === "ellipsis";
      if (clips && box.scrollWidth > box.clientWidth + 1) {
        truncated.push(`"${label}" (${box.scrollWidth}px of text in ${box.clientWidth}px)`);
        break;
      }
      if (clips && style.webkitLineClamp !== "none" && box.scrollHeight > box.clientHeight + 1) {
        truncated.push(`"${label}" (lines clamped)`);
        break;
      }
      if (box.classList.contains("ac-pushButton")) break;
    }
    const style = getComputedStyle(el);
    const fg = rgba(style.color);
    const bg = background(el);
    const shown = over(fg, bg);
    const ratio = contrast(shown, bg);
    const size = parseFloat(style.fontSize);
    const bold = parseInt(style.fontWeight, 10) >= 600;
    const large = size >= 24 || (bold && size >= 18.66);
    const needed = large ? 3 : 4.5;
    if (ratio < needed) {
      lowContrast.push(`"${label}" ${ratio.toFixed(2)}:1 (needs ${needed}:1; ${style.color} on ${css(bg)})`);
    }
  }
  return { warnings, truncated, lowContrast };

  function background(el) {
    let colour = [255, 255, 255, 1];
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  }
  function rgba(text) {
    const m = text.match(/rgba?\(([^)]+)\)/);
    if (!m) return [0, 0, 0, 0];
    const parts = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  }
  function over(top, under) {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
  }
  function luminance(c) {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function contrast(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }
  function css(c) {
    return `rgb(${c.slice(0, 3).map(Math.round).join(", ")})`;
  }
}
