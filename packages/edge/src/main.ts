import { runService } from "@unbroken/store";
import { edgeConfigFromEnv } from "./config.js";
import { startEdge } from "./server.js";

await runService({ component: "edge", configFromEnv: edgeConfigFromEnv, start: startEdge });
