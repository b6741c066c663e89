export { startNatsServer, findNatsServer, type NatsServerHandle, type NatsServerOptions } from './nats-server.js';
export { spawnService, type ServiceHandle, type SpawnServiceOptions, type ExitInfo } from './process.js';
export { makeTempDir, type TempDir } from './tmp.js';
export * from './tiny-gguf.js';
export * from "./fake-openai.js";
