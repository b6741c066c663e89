// Browser builds, run after `tsc -b` (root `prepare`/`build`, and scripts/setup.mjs):
//   packages/client/dist/browser/unbroken-client.js(.map)  the client as one ESM file
//   packages/web/dist/  the demo page: index.html, app.js, app.css, and the client
//                       bundle again as /unbroken-client.js for `<script type="module">`
// Both bundle tsc's output (so they are exactly what was type-checked); esbuild
// follows tsc's source maps, so the maps point at the .ts sources.
//
//   node scripts/build-web.mjs [--quiet]

import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const quiet = process.argv.includes("--quiet");
const at = (...p) => path.join(root, ...p);

const clientEntry = at("packages/client/dist/src/index.js");
const webEntry = at("packages/web/build/src/app.js");
for (const entry of [clientEntry, webEntry]) {
  if (!existsSync(entry)) {
    process.stderr.write(`[build-web] ${path.relative(root, entry)} is missing: run \`tsc -b\` first\n`);
    process.exit(1);
  }
}

const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome100", "firefox100", "safari15"],
  sourcemap: "linked",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
};

// 1. The client library for browsers.
const clientOut = at("packages/client/dist/browser/unbroken-client.js");
await build({ ...common, entryPoints: [clientEntry], outfile: clientOut });

// 2. The demo page.
const web = at("packages/web/dist");
rmSync(web, { recursive: true, force: true });
mkdirSync(web, { recursive: true });
await build({ ...common, entryPoints: [webEntry], outfile: path.join(web, "app.js") });
await build({ ...common, entryPoints: [at("packages/web/public/app.css")], outfile: path.join(web, "app.css") });

// Static files; index.html gets content hashes so a new build is never hidden by the cache.
const hash = (file) =>
  createHash("sha256")
    .update(readFileSync(path.join(web, file)))
    .digest("hex")
    .slice(0, 10);
for (const name of readdirSync(at("packages/web/public"))) {
  if (name === "app.css") continue;
  let text = readFileSync(at("packages/web/public", name), "utf8");
  if (name.endsWith(".html")) text = text.replace(/(app\.(?:js|css))(?=")/g, (f) => `${f}?v=${hash(f)}`);
  writeFileSync(path.join(web, name), text);
}
copyFileSync(clientOut, path.join(web, "unbroken-client.js"));
copyFileSync(`${clientOut}.map`, path.join(web, "unbroken-client.js.map"));

if (!quiet) {
  const size = (f) => `${(readFileSync(f).length / 1024).toFixed(1)} KiB`;
  process.stderr.write(
    `[build-web] ${path.relative(root, clientOut)} (${size(clientOut)}), packages/web/dist/app.js (${size(path.join(web, "app.js"))})\n`,
  );
}
