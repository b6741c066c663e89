import * as z from "zod";
import { durationSchema } from "./duration.js";

/**
 * Configuration variables: each is declared once, in the package that owns it, as a field of a
 * zod object whose schema both validates it and (through `.meta`) documents it. The docs'
 * configuration page is generated from these declarations (scripts/config-doc.mjs).
 */
export interface VarMeta {
  /** What the variable means (one meaning per name). */
  doc: string;
  /** The default as the docs should show it (when it is not simply the schema's). */
  default?: string;
  /** Set for a deprecated name: the variable that replaces it. */
  replacedBy?: string;
}

/** Documents a variable's schema (see VarMeta). */
export function envVar<S extends z.ZodType>(schema: S, doc: string, more: Omit<VarMeta, "doc"> = {}): S {
  return schema.meta({ doc, ...more }) as S;
}

/** A variable's documentation, from its declaration. */
export function varMeta(schema: z.ZodType): VarMeta | undefined {
  const meta = schema.meta() as Partial<VarMeta> | undefined;
  return typeof meta?.doc === "string" ? (meta as VarMeta) : undefined;
}

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

/** An optional integer >= min (its default depends on other settings). */
export const envOptionalInt = (min = 0) =>
  z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined) return undefined;
      const n = Number(s);
      if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(n) || n < min) {
        ctx.addIssue({ code: "custom", message: `must be an integer >= ${min}, got ${JSON.stringify(s)}` });
        return z.NEVER;
      }
      return n;
    });

/** An environment variable holding a duration (`500ms`, `60s`, `5m`, `24h`), in milliseconds. */
export const envDuration = (def: string) => durationSchema.prefault(def);

/** A port number; `0` = any free port. */
export const envPort = (def: number) => envInt(def).refine((n) => n <= 65535, "must be a port number (0 = any free port)");

/** A rate per second (decimals allowed, e.g. 0.5); with `zeroIsOff`, 0 turns the limit off. */
export function envRate(def: number, zeroIsOff = false) {
  return z
    .string()
    .default(String(def))
    .transform((s, ctx) => {
      const n = Number(s.trim());
      if (!/^\d+(\.\d+)?$/.test(s.trim()) || !Number.isFinite(n) || (n === 0 && !zeroIsOff)) {
        ctx.addIssue({
          code: "custom",
          message: `must be a number of events per second${zeroIsOff ? " (0 = no limit)" : " > 0"}, got ${JSON.stringify(s)}`,
        });
        return z.NEVER;
      }
      return n;
    });
}

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

/**
 * A deprecated name still honoured: its value when the new name is unset, with the warning to
 * log (the process logs it once it has a logger).
 */
export function deprecatedAlias<T>(
  current: T | undefined,
  old: T | undefined,
  oldName: string,
  newName: string,
  warnings: string[],
): T | undefined {
  if (old === undefined) return current;
  warnings.push(
    `${oldName} is deprecated: set ${newName} instead${current === undefined ? ` (${oldName} is used as ${newName} for now)` : ` (ignored: ${newName} is set)`}`,
  );
  return current ?? old;
}
