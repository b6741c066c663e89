import type { IncomingMessage } from "node:http";
import { isIPv4, isIPv6 } from "node:net";
import { z } from "zod";

/** The foreign origins ALLOWED_ORIGINS admits: `*` (any), or a list of serialized origins. */
export type AllowedOrigins = { any: true } | { any: false; list: ReadonlySet<string> };

/**
 * An origin as browsers serialize it (`scheme://host[:port]`, lower case, the scheme's default
 * port left out), or undefined when `text` is not one (a path, a query, credentials, `null`).
 */
export function normalizeOrigin(text: string): string | undefined {
  let u: URL;
  try {
    u = new URL(text.trim());
  } catch {
    return undefined;
  }
  if (!u.host || u.username || u.password || u.search || u.hash || (u.pathname !== "" && u.pathname !== "/")) return undefined;
  return `${u.protocol}//${u.host}`.toLowerCase();
}

/** ALLOWED_ORIGINS: comma-separated origins, or `*`; each entry checked, so a typo fails at start. */
export const allowedOriginsSchema = z
  .string()
  .optional()
  .transform((value, ctx): AllowedOrigins => {
    const entries = (value ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (entries.includes("*")) return { any: true };
    const list = new Set<string>();
    for (const entry of entries) {
      const origin = normalizeOrigin(entry);
      if (origin === undefined) {
        ctx.addIssue({ code: "custom", message: `${JSON.stringify(entry)} is not an origin (scheme://host[:port], no path) or *` });
        return z.NEVER;
      }
      list.add(origin);
    }
    return { any: false, list };
  });

/**
 * A name or address that only this machine reaches: 127.0.0.0/8, ::1 (and 127.x mapped into
 * IPv6), `localhost` and `*.localhost` (RFC 6761). Brackets around an IPv6 address are allowed.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIPv4(h)) return h.startsWith("127.");
  if (!isIPv6(h)) return false;
  // The URL parser writes an IPv6 address canonically: ::1, and ::ffff:7fxx:xxxx for 127.x.x.x.
  const canonical = new URL(`http://[${h}]`).hostname;
  return canonical === "[::1]" || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

export type OriginVerdict =
  /** `cors`: the origin to name in `access-control-allow-origin` (a foreign origin admitted by ALLOWED_ORIGINS). */
  { allowed: true; cors: string | undefined } | { allowed: false; origin: string };

/**
 * Who may use the API from a browser. A request without `Origin` (a server, a CLI, the SDKs
 * in Node) passes: browsers always send one on a WebSocket upgrade and on a cross-site
 * request. A browser request passes when its origin is the edge's own, or ALLOWED_ORIGINS
 * admits it. Anything else is a page on another site using the visitor's access to this edge.
 */
export class OriginPolicy {
  constructor(
    private readonly allowed: AllowedOrigins,
    /**
     * Same-origin also needs a loopback host name (an anonymous edge on loopback): a page whose
     * name was rebound to 127.0.0.1 (DNS rebinding) is same-origin by its Host header otherwise.
     */
    private readonly loopbackNamesOnly: boolean,
  ) {}

  check(req: IncomingMessage): OriginVerdict {
    const header = req.headers.origin;
    if (header === undefined) return { allowed: true, cors: undefined };
    const origin = normalizeOrigin(header);
    if (origin !== undefined && this.sameOrigin(origin, req.headers.host)) return { allowed: true, cors: undefined };
    if (this.allowed.any || (origin !== undefined && this.allowed.list.has(origin))) return { allowed: true, cors: header };
    return { allowed: false, origin: header };
  }

  /**
   * The edge's own origin: the page was served by this edge under the same host and port. The
   * edge speaks plain HTTP, yet behind a proxy that terminates TLS the page is `https`: so the
   * scheme is http or https, and the Host header (which a proxy passes through) decides.
   */
  private sameOrigin(origin: string, host: string | undefined): boolean {
    if (host === undefined) return false;
    const u = new URL(origin);
    if (u.protocol !== "http:" && u.protocol !== "https:") return false;
    if (this.loopbackNamesOnly && !isLoopbackHost(u.hostname)) return false;
    // The Host header read in the origin's scheme, so its default port compares as left out.
    return normalizeOrigin(`${u.protocol}//${host}`) === origin;
  }
}

/** The 403 message of a refused origin. */
export function refusedOriginMessage(origin: string): string {
  return `origin ${JSON.stringify(origin)} may not use this edge: only pages it serves itself and clients that send no Origin may; list the origin in ALLOWED_ORIGINS to admit it`;
}
