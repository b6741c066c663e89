import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";

/**
 * Hands every message stored on `subject` right now to `each`, in order: a throwaway consumer
 * bounded by the pending count at its creation, so it never waits for what is written later
 * (a live reader's part). `each` answers false (or a promise of it) to stop early. Resolves
 * true when it got every message that was pending at its start. Event logs and thread logs
 * both read this way.
 */
export async function readSubject(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  each: (m: JsMsg) => boolean | Promise<boolean>,
): Promise<boolean> {
  const ci = await jsm.consumers.add(stream, {
    filter_subject: subject,
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    mem_storage: true,
    inactive_threshold: 30_000_000_000,
    num_replicas: 1,
  });
  try {
    let remaining = ci.num_pending;
    const consumer = js.consumers.getConsumerFromInfo(ci);
    while (remaining > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(remaining, 512), expires: 5_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        const go = each(m);
        if (!(go === true || (go !== false && (await go)))) return false;
      }
      if (got === 0) break;
      remaining -= got;
    }
    return remaining <= 0;
  } finally {
    await jsm.consumers.delete(stream, ci.name).catch(() => undefined);
  }
}
