import { ProtocolError } from "@unbroken/protocol";
import { jwtVerify } from "jose";
import type { EdgeConfig } from "./config.js";

/** With auth off every socket acts as this one owner: anyone who knows a rid may read it. */
export const ANONYMOUS = "anonymous";

export type Authenticate = (token: string | undefined) => Promise<string>;

/** Returns a function from a hello token to the owner it proves, or an `unauthorized` error. */
export function authenticator(auth: EdgeConfig["auth"]): Authenticate {
  if (auth.mode === "none") return async () => ANONYMOUS;
  const key = new TextEncoder().encode(auth.secret);
  return async (token) => {
    if (token === undefined || token.length === 0) throw new ProtocolError("unauthorized", "a token is required");
    try {
      // Only HS256: `none` and every other algorithm are refused by the allow-list.
      const { payload } = await jwtVerify(token, key, { algorithms: ["HS256"] });
      if (typeof payload.sub !== "string" || payload.sub.length === 0) {
        throw new ProtocolError("unauthorized", "the token has no subject");
      }
      return payload.sub;
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw new ProtocolError("unauthorized", "invalid or expired token", { cause: err });
    }
  };
}
