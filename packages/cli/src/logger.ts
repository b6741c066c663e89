import { pino, type Logger } from "pino";

/** JSON lines on stdout, one base field naming the component. */
export function createLogger(level: string, component: string): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}
