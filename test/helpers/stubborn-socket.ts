import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import type { Frame } from "./raw-client.js";

/**
 * A WebSocket client written on a bare TCP socket that reads everything the edge sends but
 * never answers a close frame and never closes: a client that ignores `goaway`. (The `ws`
 * library answers a close frame by itself, so it cannot play this part.) Only what the tests
 * need: unfragmented text frames in, masked text frames out.
 */
export class StubbornSocket {
  /** Text frames received, parsed. */
  readonly frames: Frame[] = [];
  /** The code of the first close frame received, if any. */
  closeCode: number | undefined;
  /** Resolves when the TCP connection ends (the edge closed or dropped it). */
  readonly ended: Promise<void>;
  private buffer = Buffer.alloc(0);
  private upgraded = false;
  private refusal: string | undefined;
  private waiters: Array<() => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.on("data", (d) => this.onData(d));
    socket.on("error", () => undefined);
    this.ended = new Promise((resolve) => socket.once("close", () => resolve()));
  }

  /** Connects to ws://127.0.0.1:port/v1/ws, completes the upgrade and the hello. */
  static async connect(port: number): Promise<StubbornSocket> {
    const socket = connect(port, "127.0.0.1");
    const s = new StubbornSocket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const key = randomBytes(16).toString("base64");
    socket.write(
      `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await s.until(() => s.upgraded || s.refusal !== undefined, "the 101 upgrade");
    if (s.refusal !== undefined) throw new Error(`upgrade refused: ${s.refusal}`);
    s.send({ type: "hello" });
    await s.until(() => s.frames.some((f) => f.type === "welcome"), "welcome");
    return s;
  }

  /** Sends one masked text frame (payloads under 64 KiB). */
  send(frame: Frame): void {
    const payload = Buffer.from(JSON.stringify(frame));
    const mask = randomBytes(4);
    const head =
      payload.length < 126
        ? Buffer.from([0x81, 0x80 | payload.length])
        : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
    const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
    this.socket.write(Buffer.concat([head, mask, masked]));
  }

  /** Resolves once `cond` holds, re-checked on every byte received; fails naming `what`. */
  until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${what}: not within ${ms} ms; frames ${JSON.stringify(this.frames).slice(0, 400)}`)),
        ms,
      );
      const check = (): void => {
        if (!cond()) return void this.waiters.push(check);
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    if (!this.upgraded) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.buffer.subarray(0, end).toString();
      if (!head.startsWith("HTTP/1.1 101")) {
        this.refusal = head;
        this.socket.destroy();
      } else this.upgraded = true;
      this.buffer = this.buffer.subarray(end + 4);
    }
    if (this.upgraded) this.parseFrames();
    for (const w of this.waiters.splice(0)) w();
  }

  private parseFrames(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const opcode = (b[0] as number) & 0x0f;
      let len = (b[1] as number) & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + len) return;
      const payload = b.subarray(at, at + len);
      this.buffer = b.subarray(at + len);
      if (opcode === 0x1) this.frames.push(JSON.parse(payload.toString()) as Frame);
      else if (opcode === 0x8 && this.closeCode === undefined) this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      // Pings (0x9) go unanswered too: this client answers nothing.
    }
  }
}
