// Counts the JetStream consumers created on a stream, from the server's own advisories
// ($JS.EVENT.ADVISORY.CONSUMER.CREATED.<stream>.<consumer>): a test can assert that some
// path creates none, however briefly the consumer would have lived.

/** The slice of a NATS connection this helper uses (structural: @unbroken/testing depends on no client). */
export interface AdvisoryConnection {
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: { subject: string }) => void }): { unsubscribe(): void };
  request(subject: string, payload: string, opts: { timeout: number }): Promise<{ string(): string }>;
}

export class ConsumerCreations {
  private readonly created: string[] = [];
  private readonly fences = new Set<string>();
  private readonly waiters: Array<() => void> = [];
  private readonly sub: { unsubscribe(): void };

  /**
   * Starts counting consumers created on `stream`. `fenceSubject` (a subject of the stream that
   * nothing else uses) is where `settled` creates consumers of its own, which it does not count.
   */
  constructor(
    private readonly nc: AdvisoryConnection,
    private readonly stream: string,
    private readonly fenceSubject: string,
  ) {
    const prefix = `$JS.EVENT.ADVISORY.CONSUMER.CREATED.${stream}.`;
    this.sub = nc.subscribe(`${prefix}*`, {
      callback: (err, msg) => {
        if (err) return;
        this.created.push(msg.subject.slice(prefix.length));
        for (const w of this.waiters.splice(0)) w();
      },
    });
  }

  /** Names of the consumers created since the counting began, fences excluded, as far as their advisories have come. */
  get names(): string[] {
    return this.created.filter((n) => !this.fences.has(n));
  }

  /**
   * The consumers created before this call, counted once all their advisories have arrived:
   * it creates (and deletes) a consumer of its own and waits for its advisory, which the server
   * sends after every earlier one.
   */
  async settled(timeoutMs = 15_000): Promise<string[]> {
    const create = {
      stream_name: this.stream,
      config: { ack_policy: "none", filter_subject: this.fenceSubject, inactive_threshold: 10_000_000_000 },
    };
    const reply = JSON.parse(
      (await this.nc.request(`$JS.API.CONSUMER.CREATE.${this.stream}`, JSON.stringify(create), { timeout: 5_000 })).string(),
    ) as {
      name?: string;
      error?: { description?: string };
    };
    const name = reply.name;
    if (!name) throw new Error(`could not create a fence consumer: ${reply.error?.description ?? "no name in the reply"}`);
    this.fences.add(name);
    const deadline = Date.now() + timeoutMs;
    while (!this.created.includes(name)) {
      if (Date.now() > deadline) throw new Error(`no advisory for the fence consumer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    await this.nc.request(`$JS.API.CONSUMER.DELETE.${this.stream}.${name}`, "", { timeout: 5_000 }).catch(() => undefined);
    return this.names;
  }

  close(): void {
    this.sub.unsubscribe();
  }
}
