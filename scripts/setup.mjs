// Brings a checkout to a runnable state before `npm start` / `npm test` /
// `npm run edge|worker`: dependencies installed, dist/ current, nats-server
// available. Runs before node_modules exists, so it uses node builtins only.
//
// Flags: --quiet (no progress output), --no-nats (skip the nats-server check).
// The nats-server check is also skipped when NATS_URL is set (external broker).

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const quiet = argv.includes('--quiet');
const noNats = argv.includes('--no-nats') || Boolean(process.env.NATS_URL);

const log = (msg) => {
  if (!quiet) process.stderr.write(`[setup] ${msg}\n`);
};

function fail(msg) {
  // Errors are printed even with --quiet: a silent non-zero exit helps nobody.
  process.stderr.write(`[setup] error: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`\`${[cmd, ...args].join(' ')}\` failed (${r.signal ?? `exit code ${r.status}`})`);
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
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  return dirs.map((d) => path.join(d, name)).find(isExecutableFile);
}

// Same lookup order as findNatsServer() in packages/testing; duplicated because
// this script must work before anything is installed or built.
function findNatsServer() {
  if (process.env.NATS_SERVER_BIN) return isExecutableFile(process.env.NATS_SERVER_BIN) ? process.env.NATS_SERVER_BIN : undefined;
  return onPath('nats-server') ?? ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find(isExecutableFile);
}

// 1. Dependencies. npm records what it installed in node_modules/.package-lock.json;
// a package-lock.json newer than that means someone changed dependencies.
const nodeModules = path.join(root, 'node_modules');
const hiddenLock = path.join(nodeModules, '.package-lock.json');
const lock = path.join(root, 'package-lock.json');
const tsc = path.join(nodeModules, '.bin', 'tsc');
const stale =
  !existsSync(nodeModules) || !existsSync(hiddenLock) || !existsSync(tsc) || (existsSync(lock) && mtime(lock) > mtime(hiddenLock));

if (stale) {
  // npm install also runs the root `prepare` script (tsc -b), so this builds too.
  log('installing dependencies (npm install)');
  run('npm', ['install']);
} else {
  // 2. Build. Incremental, so close to free when nothing changed.
  log('building (tsc -b)');
  run(tsc, ['-b']);
}

// 3. Broker.
if (!noNats) {
  let bin = findNatsServer();
  if (!bin && process.env.NATS_SERVER_BIN) fail(`NATS_SERVER_BIN=${process.env.NATS_SERVER_BIN} is not an executable file`);
  if (!bin && process.getuid?.() === 0 && onPath('apt-get')) {
    log('nats-server not found; installing it with apt-get');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update'], env);
    run('apt-get', ['install', '-y', 'nats-server'], env);
    bin = findNatsServer();
  }
  if (!bin) {
    fail(
      'nats-server not found: install it (Debian/Ubuntu: apt-get install nats-server; elsewhere see ' +
        'https://docs.nats.io/running-a-nats-service/introduction/installation), set NATS_SERVER_BIN, or set NATS_URL',
    );
  }
  log(`using ${bin}`);
}
