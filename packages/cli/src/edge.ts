// `unbroken edge` (npm run edge): one edge process, configured by the environment.
import { edgeConfigFromEnv, startEdge } from "@unbroken/edge";
import { runService } from "./run-service.js";

await runService({ component: "edge", configFromEnv: edgeConfigFromEnv, start: startEdge });
