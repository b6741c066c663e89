import type { Logger } from "pino";
import { createLogger } from "./logger.js";

export interface ServiceSpec<C extends { logLevel: string }> {
  component: "edge" | "worker";
  configFromEnv(env: Record<string, string | undefined>): C;
  start(config: C, log: Logger): Promise<{ close(): Promise<void> }>;
}

/** Exit codes: 0 after a drain, 1 when starting or stopping failed, 2 for a configuration error. */
export const EXIT = { ok: 0, failed: 1, config: 2 } as const;

/**
 * The life of an edge or worker process: configuration from the environment (exit 2 when
 * invalid, saying why), start, and a drain on SIGTERM or SIGINT before exiting 0.
 */
export async function runService<C extends { logLevel: string }>(spec: ServiceSpec<C>): Promise<void> {
  let config: C;
  try {
    config = spec.configFromEnv(process.env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(EXIT.config);
  }
  const log = createLogger(config.logLevel, spec.component);
  try {
    const service = await spec.start(config, log);
    const shutdown = (signal: string): void => {
      log.info({ signal }, "shutting down");
      service.close().then(
        () => process.exit(EXIT.ok),
        (err: unknown) => {
          log.error({ err: String(err) }, "shutdown failed");
          process.exit(EXIT.failed);
        },
      );
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  } catch (err) {
    log.fatal({ err: String(err) }, `${spec.component} failed to start`);
    process.exit(EXIT.failed);
  }
}
