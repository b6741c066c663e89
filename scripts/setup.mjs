// Brings a checkout to a runnable state before `npm start` / `npm test` /
// `npm run edge|worker`: dependencies installed, dist/ current, nats-server
// available. Runs before node_modules exists, so it uses node builtins only.
//
// Flags: --quiet (no progress output), --no-nats (skip the nats-server check),
// --browser (make sure Chromium is there for the browser tests; `npm test` passes it),
// --deploy (make sure HAProxy and docker compose are there for test/e2e/topology; `npm test`
// passes it).
// The nats-server check is also skipped when NATS_URL is set (external broker).

import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const quiet = argv.includes("--quiet");
const noNats = argv.includes("--no-nats") || Boolean(process.env.NATS_URL);
const browser = argv.includes("--browser");
const deploy = argv.includes("--deploy");

const log = (msg) => {
  if (!quiet) process.stderr.write(`[setup] ${msg}\n`);
};

function fail(msg) {
  // Errors are printed even with --quiet: a silent non-zero exit helps nobody.
  process.stderr.write(`[setup] error: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`\`${[cmd, ...args].join(" ")}\` failed (${r.signal ?? `exit code ${r.status}`})`);
}

const mtime = (p) => statSync(p).mtimeMs;

function isExecutableFile(p) {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function onPath(name) {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  return dirs.map((d) => path.join(d, name)).find(isExecutableFile);
}

// Same lookup order as findNatsServer() in packages/cli and packages/testing; duplicated because
// this script must work before anything is installed or built.
function findNatsServer() {
  if (process.env.NATS_SERVER_BIN) return isExecutableFile(process.env.NATS_SERVER_BIN) ? process.env.NATS_SERVER_BIN : undefined;
  return onPath("nats-server") ?? ["/usr/sbin/nats-server", "/usr/local/bin/nats-server"].find(isExecutableFile);
}

// 1. Dependencies. npm records what it installed in node_modules/.package-lock.json;
// a package-lock.json newer than that means someone changed dependencies.
const nodeModules = path.join(root, "node_modules");
const hiddenLock = path.join(nodeModules, ".package-lock.json");
const lock = path.join(root, "package-lock.json");
const tsc = path.join(nodeModules, ".bin", "tsc");
const stale =
  !existsSync(nodeModules) || !existsSync(hiddenLock) || !existsSync(tsc) || (existsSync(lock) && mtime(lock) > mtime(hiddenLock));

if (stale) {
  // npm install also runs the root `prepare` script (tsc -b + bundles), so this builds too.
  log("installing dependencies (npm install)");
  run("npm", ["install"]);
} else {
  // 2. Build. Incremental, so close to free when nothing changed; then the browser
  // bundles (the client's ESM build and the demo page), which take well under a second.
  log("building (tsc -b, scripts/build-web.mjs)");
  run(tsc, ["-b"]);
  run(process.execPath, [path.join(root, "scripts", "build-web.mjs")]);
}

// 3. Broker.
if (!noNats) {
  let bin = findNatsServer();
  if (!bin && process.env.NATS_SERVER_BIN) fail(`NATS_SERVER_BIN=${process.env.NATS_SERVER_BIN} is not an executable file`);
  if (!bin && process.getuid?.() === 0 && onPath("apt-get")) {
    log("nats-server not found; installing it with apt-get");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    run("apt-get", ["update"], env);
    run("apt-get", ["install", "-y", "nats-server"], env);
    bin = findNatsServer();
  }
  if (!bin) {
    fail(
      "nats-server not found: install it (Debian/Ubuntu: apt-get install nats-server; elsewhere see " +
        "https://docs.nats.io/running-a-nats-service/introduction/installation), set NATS_SERVER_BIN, or set NATS_URL",
    );
  }
  log(`using ${bin}`);
}

// 4. Chromium for the browser tests (test/e2e/browser*): Debian's package, never a
// browser download. Same lookup as test/helpers/browser.ts. When it cannot be
// installed, say so and go on: the other tests run, the browser tests fail with
// this message.
function findChromium() {
  if (process.env.CHROMIUM_BIN) return isExecutableFile(process.env.CHROMIUM_BIN) ? process.env.CHROMIUM_BIN : undefined;
  return ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(isExecutableFile);
}

if (browser) {
  let bin = findChromium();
  if (!bin && !process.env.CHROMIUM_BIN && process.getuid?.() === 0 && onPath("apt-get")) {
    log("chromium not found; installing it with apt-get (Debian package chromium)");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    run("apt-get", ["update"], env);
    run("apt-get", ["install", "-y", "chromium"], env);
    bin = findChromium();
  }
  if (bin) log(`using ${bin} for the browser tests`);
  else {
    process.stderr.write(
      `[setup] warning: chromium not found${process.env.CHROMIUM_BIN ? ` (CHROMIUM_BIN=${process.env.CHROMIUM_BIN} is not executable)` : ""}: ` +
        "the browser tests will fail. Install it (Debian/Ubuntu as root: apt-get install chromium) or set CHROMIUM_BIN.\n",
    );
  }
}

// 5. HAProxy and docker compose for test/e2e/topology.test.ts, which runs deploy/haproxy.cfg in
// front of local edges and checks docker-compose.yml with `docker compose config` (no daemon
// needed). Debian's packages `haproxy` and `docker-compose` (the standalone v1 CLI; the test
// uses the `docker compose` plugin instead when it is there). Like Chromium: installed as root
// on Debian/Ubuntu, otherwise a warning, and those tests fail saying what to install.
function hasCompose() {
  const plugin = spawnSync("docker", ["compose", "version"], { stdio: "ignore" });
  return plugin.status === 0 || Boolean(onPath("docker-compose"));
}

function findHaproxy() {
  if (process.env.HAPROXY_BIN) return isExecutableFile(process.env.HAPROXY_BIN) ? process.env.HAPROXY_BIN : undefined;
  return onPath("haproxy") ?? ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"].find(isExecutableFile);
}

if (deploy) {
  const missing = [];
  if (!findHaproxy() && !process.env.HAPROXY_BIN) missing.push("haproxy");
  if (!hasCompose()) missing.push("docker-compose");
  if (missing.length > 0 && process.getuid?.() === 0 && onPath("apt-get")) {
    log(`${missing.join(" and ")} not found; installing with apt-get (for the topology tests)`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    run("apt-get", ["update"], env);
    run("apt-get", ["install", "-y", "--no-install-recommends", ...missing], env);
  }
  const still = [findHaproxy() ? "" : "haproxy", hasCompose() ? "" : "docker compose"].filter(Boolean);
  if (still.length > 0) {
    process.stderr.write(
      `[setup] warning: ${still.join(" and ")} not found: the topology tests will fail. ` +
        "Install them (Debian/Ubuntu as root: apt-get install haproxy docker-compose).\n",
    );
  }
}
