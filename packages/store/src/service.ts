import { pino, type Logger } from "pino";

/** JSON lines on stdout, one base field naming the component. */
export function createLogger(level: string, component: string): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}

export interface ServiceSpec<C extends { logLevel: string }> {
  component: "edge" | "worker";
  configFromEnv(env: Record<string, string | undefined>): C;
  start(config: C, log: Logger): Promise<{ close(): Promise<void> }>;
}

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
    process.exit(2);
  }
  const log = createLogger(config.logLevel, spec.component);
  try {
    const service = await spec.start(config, log);
    const shutdown = (signal: string): void => {
      log.info({ signal }, "shutting down");
      service.close().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err: String(err) }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  } catch (err) {
    log.fatal({ err: String(err) }, `${spec.component} failed to start`);
    process.exit(1);
  }
}
