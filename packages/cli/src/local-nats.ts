import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const INSTALL_HINT =
  "install it (Debian/Ubuntu: `apt-get install -y nats-server`; elsewhere see https://docs.nats.io) or set NATS_SERVER_BIN or NATS_URL";

function isExecutableFile(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Locates nats-server: NATS_SERVER_BIN, then PATH, then the usual install locations. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.NATS_SERVER_BIN) return isExecutableFile(env.NATS_SERVER_BIN) ? env.NATS_SERVER_BIN : undefined;
  const dirs = (env.PATH ?? "").split(path.delimiter).filter(Boolean);
  return [...dirs.map((d) => path.join(d, "nats-server")), "/usr/sbin/nats-server", "/usr/local/bin/nats-server"].find(isExecutableFile);
}

export interface LocalNats {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * A nats-server with JetStream for `unbroken dev`: any free port on 127.0.0.1 (another NATS may
 * hold 4222), the store in `storeDir` (kept across runs, so responses survive a restart).
 */
export async function startLocalNats(storeDir: string, timeoutMs = 10_000): Promise<LocalNats> {
  const bin = findNatsServer();
  if (!bin) throw new Error(`nats-server not found on PATH, /usr/sbin or /usr/local/bin: ${INSTALL_HINT}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), "unbroken-dev-nats-"));
  const conf = path.join(dir, "nats-server.conf");
  const lines = [
    'listen: "127.0.0.1:-1"',
    `ports_file_dir: ${JSON.stringify(dir)}`,
    `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
  ];
  await writeFile(conf, `${lines.join("\n")}\n`);
  const child = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4_000)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    const port = await waitForPort(child, dir, timeoutMs, () => stderr);
    return {
      url: `nats://127.0.0.1:${port}`,
      stop: async () => {
        child.kill("SIGTERM");
        await exited;
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The ports file (`<name>_<pid>.ports`) appears once the listener is up: the readiness signal. */
async function waitForPort(child: ChildProcess, dir: string, timeoutMs: number, stderr: () => string): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server exited before it was ready:\n${stderr()}`);
    const name = (await readdir(dir)).find((f) => f.endsWith(`_${child.pid}.ports`));
    if (name) {
      try {
        const { nats } = JSON.parse(await readFile(path.join(dir, name), "utf8")) as { nats?: string[] };
        const port = Number(new URL(nats?.[0] ?? "").port);
        if (port > 0) return port;
      } catch {
        // Caught the file mid-write; try again.
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nats-server did not become ready within ${timeoutMs} ms:\n${stderr()}`);
}
