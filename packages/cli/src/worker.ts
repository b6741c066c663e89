// `unbroken worker` (npm run worker): one worker process, configured by the environment.
import { startWorker, workerConfigFromEnv } from "@unbroken/worker";
import { runService } from "./run-service.js";

await runService({ component: "worker", configFromEnv: workerConfigFromEnv, start: startWorker });
