import { Broker, silentLog } from "@unbroken/store";
import { NatsTools, startNatsServer, type NatsServerHandle } from "@unbroken/testing";

/** A test file's own nats-server (random port), a Broker on it, and the test kit's NatsTools. */
export interface BrokerKit {
  nats: NatsServerHandle;
  broker: Broker;
  tools: NatsTools;
  /** Closes the tools and the broker, then stops the server. */
  stop(): Promise<void>;
}

export async function startBrokerKit(name: string): Promise<BrokerKit> {
  const nats = await startNatsServer();
  try {
    const broker = await Broker.connect({ url: nats.url, name, retentionMs: 3_600_000, log: silentLog });
    const tools = await NatsTools.connect(nats.url);
    return {
      nats,
      broker,
      tools,
      stop: async () => {
        await tools.close();
        await broker.close();
        await nats.stop();
      },
    };
  } catch (err) {
    await nats.stop();
    throw err;
  }
}
