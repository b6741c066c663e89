import * as z from "zod";
import { durationSchema } from "./duration.js";

/** An environment variable holding an integer >= min, with a default when unset. */
export const envInt = (def: number, min = 0) =>
  z
    .string()
    .default(String(def))
    .transform((s, ctx) => {
      const n = Number(s);
      if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(n) || n < min) {
        ctx.addIssue({ code: "custom", message: `must be an integer >= ${min}, got ${JSON.stringify(s)}` });
        return z.NEVER;
      }
      return n;
    });

/** An environment variable holding a duration (`500ms`, `60s`, `5m`, `24h`), in milliseconds. */
export const envDuration = (def: string) => durationSchema.prefault(def);

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * Validates a process environment against `schema`. Empty variables count as unset, and
 * every problem is reported with the variable it concerns.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>, what: string): z.infer<S> {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`);
  throw new Error(`invalid ${what} configuration:\n  ${lines.join("\n  ")}`);
}
