// Runs the compiled tests with Node's built-in runner: unit tests first, then end-to-end.
//
//   node scripts/test.mjs [filter...] [node --test options...]
//
// Positional args keep only test files whose path contains one of them
// (`npm test -- edge`); options such as `--test-name-pattern=resume` are passed
// to node. Node 20 does not expand globs, so the files are listed explicitly.

import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

// Options whose value may come as the next argument; without this list that
// value would be mistaken for a file filter.
const TAKES_VALUE = new Set([
  "--test-name-pattern",
  "--test-skip-pattern",
  "--test-reporter",
  "--test-reporter-destination",
  "--test-timeout",
  "--test-concurrency",
  "--test-shard",
  "--import",
  "--require",
  "-r",
  "--conditions",
  "-C",
]);

const options = [];
const filters = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (!a.startsWith("-")) filters.push(a);
  else {
    options.push(a);
    if (TAKES_VALUE.has(a) && i + 1 < argv.length) options.push(argv[++i]);
  }
}

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && e.name !== "node_modules") collect(p, out);
    else if (e.isFile() && e.name.endsWith(".test.js")) out.push(path.relative(root, p));
  }
  return out;
}

const dirs = [path.join(root, "test", "dist")];
for (const pkg of readdirSync(path.join(root, "packages"), { withFileTypes: true })) {
  if (pkg.isDirectory()) dirs.push(path.join(root, "packages", pkg.name, "dist", "test"));
}
// A compiled test whose source is gone (moved or deleted; tsc never removes outputs) must not
// run: `<pkg>/dist/test/x.test.js` runs only while `<pkg>/test/x.test.ts` exists.
const sourceOf = (file) => {
  const parts = file.split(path.sep);
  const at = parts.indexOf("dist");
  return path.join(root, ...parts.slice(0, at), ...parts.slice(at + 1)).replace(/\.js$/, ".ts");
};
const all = dirs
  .flatMap((d) => collect(d, []))
  .filter((f) => existsSync(sourceOf(f)))
  .sort();
const files = filters.length ? all.filter((f) => filters.some((s) => f.includes(s))) : all;

if (files.length === 0) {
  process.stderr.write(
    all.length ? `[test] no test file matches ${filters.join(", ")}\n` : "[test] no compiled tests found (run `npm run build`)\n",
  );
  process.exit(1);
}

// Two runs: the packages' unit tests two files at a time (each has its own nats-server, and
// they take half the time so on 2 cores), then the end-to-end tests one file at a time (they
// start clusters, browsers and many processes, and kill them: one at a time keeps them honest).
// User options come last so they override the defaults (last one wins). The timeout is a
// hang guard per file: the cluster test waits through three JetStream leader elections,
// each up to ~15 s on nats-server 2.9, and needed more than 120 s on a slow run.
const isE2e = (f) => f.startsWith(`test${path.sep}`);
const runs = [
  { files: files.filter((f) => !isE2e(f)), concurrency: 2 },
  { files: files.filter(isE2e), concurrency: 1 },
].filter((r) => r.files.length > 0);

function run({ files, concurrency }) {
  const args = ["--test", `--test-concurrency=${concurrency}`, "--test-timeout=300000", ...options, ...files];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: "inherit" });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

// Both runs always run; the exit code is the first failure's.
let failed = 0;
for (const r of runs) {
  const code = await run(r);
  failed ||= code;
}
process.exit(failed);
