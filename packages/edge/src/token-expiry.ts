/** setTimeout's longest delay (about 24.8 days); a later `exp` is reached in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * The `exp` of the token a socket said hello with: `expired()` for each command, and `onExpire`
 * called once at `exp` (the session then closes the socket with 4401). Owned by one session,
 * which calls `clear()` when it closes, so no timer outlives its socket.
 */
export class TokenExpiry {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private cleared = false;

  /** `expiresAt` in ms since the epoch; undefined: the token never expires (no `exp`, or auth off). */
  constructor(
    private readonly expiresAt: number | undefined,
    private readonly onExpire: () => void,
    private readonly clock: () => number = Date.now,
  ) {
    this.arm();
  }

  expired(): boolean {
    return this.expiresAt !== undefined && this.clock() >= this.expiresAt;
  }

  clear(): void {
    this.cleared = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.expiresAt === undefined || this.cleared) return;
    const left = this.expiresAt - this.clock();
    // Never called back from the constructor (the session is still being set up); a timer
    // that fires a little early checks again rather than expire before `exp`.
    this.timer = setTimeout(() => (left <= 0 ? this.onExpire() : this.arm()), Math.max(0, Math.min(left, MAX_DELAY_MS)));
  }
}
