export { startNatsServer, findNatsServer, type NatsServerHandle, type NatsServerOptions } from "./nats-server.js";
export { spawnService, type ServiceHandle, type SpawnServiceOptions, type ExitInfo } from "./process.js";
export { makeTempDir, type TempDir } from "./tmp.js";
export * from "./tiny-gguf.js";
export * from "./fake-openai.js";
export {
  startNatsCluster,
  freePort,
  type NatsClusterHandle,
  type NatsClusterNode,
  type NatsClusterOptions,
  type HealthOptions,
} from "./nats-cluster.js";
export { startHaproxy, findHaproxy, HAPROXY_INSTALL_HINT, type HaproxyHandle, type HaproxyOptions } from "./haproxy.js";
export { parsePrometheus, scrapeMetrics, Scrape, type Sample } from "./prometheus.js";
export { ConsumerCreations, type AdvisoryConnection } from "./consumer-creations.js";
export { NatsTools, type StoredFrame } from "./nats-tools.js";
