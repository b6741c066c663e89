import { runService } from "@unbroken/store";
import { workerConfigFromEnv } from "./config.js";
import { startWorker } from "./worker.js";

await runService({ component: "worker", configFromEnv: workerConfigFromEnv, start: startWorker });
