// Validate Adaptive Cards offline with the official `adaptivecards` library, targeting 1.5.
//
// Usage: node tests/node/validate_card.mjs [cards.json] [--max-bytes N]
// Input (file or stdin): a JSON array of cards, or one card object.
// Output (stdout): a JSON array, one {index, ok, errors, warnings, bytes, activityBytes} per card.
// Exit: 0 all clean, 1 any card has an error or warning, 2 bad input or internal failure.
//
// The library's lib/ build is extensionless ESM that node cannot load; its UMD bundle in
// dist/ parses and validates without a DOM (only rendering needs one).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const AC = require("adaptivecards/dist/adaptivecards.js");

const TARGET = AC.Versions.v1_5;
const DEFAULT_MAX_ACTIVITY_BYTES = 28000; // Teams rejects message activities over ~28 KB

// Library events that are advice rather than breakage; still fail the run (strict), but
// reported separately so the developer can tell them apart.
const WARNING_EVENTS = new Set([
  AC.ValidationEvent.Hint,
  AC.ValidationEvent.Deprecated,
  AC.ValidationEvent.RequiredInputsShouldHaveLabel,
  AC.ValidationEvent.RequiredInputsShouldHaveErrorMessage,
]);

// Required properties the library accepts silently but Teams renders as blank or cannot
// route: checked on the raw JSON. Action.Execute needs a verb because the bot dispatches
// Universal Actions on it.
const HOUSE_REQUIRED = {
  TextBlock: ["text"],
  Image: ["url"],
  "Action.Execute": ["verb"],
  "Action.OpenUrl": ["url"],
  Fact: ["title", "value"],
  "Input.Choice": ["title", "value"],
};

function parseArgs(argv) {
  const opts = { file: null, maxBytes: DEFAULT_MAX_ACTIVITY_BYTES };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--max-bytes") opts.maxBytes = Number(argv[++i]);
    else if (argv[i].startsWith("--")) throw new Error(`unknown option ${argv[i]}`);
    else opts.file = argv[i];
  }
  if (!Number.isFinite(opts.maxBytes) || opts.maxBytes <= 0) throw new Error("bad --max-bytes");
  return opts;
}

function typeName(source) {
  try {
    return source && typeof source.getJsonTypeName === "function"
      ? source.getJsonTypeName()
      : undefined;
  } catch {
    return undefined;
  }
}

function describe(phase, e) {
  return {
    phase,
    event: AC.ValidationEvent[e.event] ?? String(e.event),
    type: typeName(e.source),
    id: e.source && e.source.id ? e.source.id : undefined,
    message: e.message,
  };
}

// Walk the raw JSON for the house rules; path is a JSON-pointer-ish string for the report.
function houseChecks(node, path, out) {
  if (Array.isArray(node)) {
    node.forEach((child, i) => houseChecks(child, `${path}/${i}`, out));
    return;
  }
  if (node === null || typeof node !== "object") return;
  let kind = node.type;
  if (kind === undefined && /\/facts\/\d+$/.test(path)) kind = "Fact";
  if (kind === undefined && /\/choices\/\d+$/.test(path)) kind = "Input.Choice";
  for (const prop of HOUSE_REQUIRED[kind] ?? []) {
    const value = node[prop];
    if (value === undefined || value === null || value === "") {
      out.push({
        phase: "House",
        event: "MissingRequiredProperty",
        type: kind,
        id: node.id,
        path,
        message: `${kind} at ${path || "/"} must have a non-empty "${prop}".`,
      });
    }
  }
  for (const [key, child] of Object.entries(node)) {
    // An action's data is the bot's own payload, not card structure.
    if (key === "data" && typeof kind === "string" && kind.startsWith("Action.")) continue;
    houseChecks(child, `${path}/${key}`, out);
  }
}

function checkVersion(json, errors) {
  const raw = json && json.version;
  const version = typeof raw === "string" ? AC.Version.parse(raw, new AC.SerializationContext()) : undefined;
  if (!version || !version.isValid) {
    errors.push({
      phase: "House",
      event: "UnsupportedCardVersion",
      type: "AdaptiveCard",
      message: `Card "version" must be set (e.g. "1.5"); got ${JSON.stringify(raw)}.`,
    });
  } else if (version.compareTo(TARGET) > 0) {
    errors.push({
      phase: "House",
      event: "UnsupportedCardVersion",
      type: "AdaptiveCard",
      message: `Card version ${raw} is newer than ${TARGET.toString()}, the most Teams renders everywhere.`,
    });
  }
}

function checkCard(json, index, maxBytes) {
  const errors = [];
  const warnings = [];
  const add = (item, event) => (WARNING_EVENTS.has(event) ? warnings : errors).push(item);

  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    errors.push({ phase: "Input", event: "NotAnObject", message: "A card must be a JSON object." });
    return { index, ok: false, errors, warnings, bytes: 0, activityBytes: 0 };
  }

  const context = new AC.SerializationContext(TARGET);
  const card = new AC.AdaptiveCard();
  try {
    card.parse(json, context);
  } catch (err) {
    errors.push({ phase: "Parse", event: "Exception", message: String(err && err.message) });
  }
  for (let i = 0; i < context.eventCount; i++) {
    const e = context.getEventAt(i);
    add(describe("Parse", e), e.event);
  }
  try {
    const results = card.validateProperties();
    for (const e of results.validationEvents) add(describe("Validation", e), e.event);
  } catch (err) {
    errors.push({ phase: "Validation", event: "Exception", message: String(err && err.message) });
  }
  checkVersion(json, errors);
  houseChecks(json, "", errors);

  const bytes = Buffer.byteLength(JSON.stringify(json), "utf8");
  // The smallest message activity that could carry this card: what the 28 KB limit applies to.
  const activity = {
    type: "message",
    attachments: [{ contentType: "application/vnd.microsoft.card.adaptive", content: json }],
  };
  const activityBytes = Buffer.byteLength(JSON.stringify(activity), "utf8");
  if (activityBytes > maxBytes) {
    errors.push({
      phase: "Size",
      event: "TooLarge",
      message: `Card makes a ${activityBytes}-byte activity; Teams' limit is ${maxBytes} bytes.`,
    });
  }
  return { index, ok: errors.length === 0 && warnings.length === 0, errors, warnings, bytes, activityBytes };
}

function main() {
  let opts;
  let cards;
  try {
    opts = parseArgs(process.argv.slice(2));
    const text = readFileSync(opts.file ?? 0, "utf8");
    const parsed = JSON.parse(text);
    cards = Array.isArray(parsed) ? parsed : [parsed];
  } catch (err) {
    process.stderr.write(`validate_card: ${err.message}\n`);
    return 2;
  }
  const results = cards.map((card, i) => checkCard(card, i, opts.maxBytes));
  process.stdout.write(JSON.stringify(results, null, 2) + "\n");
  return results.every((r) => r.ok) ? 0 : 1;
}

process.exitCode = main();
