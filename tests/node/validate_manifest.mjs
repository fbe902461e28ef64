// Validate a Teams app manifest offline against the official schema for its manifestVersion,
// using @microsoft/app-manifest's own validator (AppManifestUtils.validateAgainstSchema) with
// the schema file that package bundles, so nothing is fetched from the network.
//
// Usage: node tests/node/validate_manifest.mjs <manifest.json | app.zip-extracted dir/manifest.json>
//        (or the manifest JSON on stdin)
// Output: {ok, manifestVersion, schema, errors:[...]} on stdout. Exit 0 valid, 1 invalid, 2 bad input.
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);

function schemaPath(manifestVersion) {
  const pkgDir = path.dirname(require.resolve("@microsoft/app-manifest/package.json"));
  const folder = manifestVersion === "devPreview" ? "vDevPreview" : `v${manifestVersion}`;
  return path.join(pkgDir, "build", "json-schemas", "teams", folder, "MicrosoftTeams.schema.json");
}

async function main() {
  let manifest;
  try {
    const file = process.argv[2];
    manifest = JSON.parse(readFileSync(file ?? 0, "utf8").replace(/^\uFEFF/, ""));
  } catch (err) {
    process.stderr.write(`validate_manifest: ${err.message}\n`);
    return 2;
  }
  const version = manifest && manifest.manifestVersion;
  const schemaFile = typeof version === "string" ? schemaPath(version) : null;
  if (!schemaFile || !existsSync(schemaFile)) {
    const result = {
      ok: false,
      manifestVersion: version ?? null,
      schema: schemaFile,
      errors: [`no bundled schema for manifestVersion ${JSON.stringify(version)}`],
    };
    process.stdout.write(JSON.stringify(result, null, 2) + "\n");
    return 1;
  }
  const { AppManifestUtils } = require("@microsoft/app-manifest");
  const schema = JSON.parse(readFileSync(schemaFile, "utf8"));
  const errors = await AppManifestUtils.validateAgainstSchema(manifest, schema);
  const result = { ok: errors.length === 0, manifestVersion: version, schema: schemaFile, errors };
  process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  return result.ok ? 0 : 1;
}

process.exitCode = await main();
