export { createLogger } from "./logger.js";
export { runService, EXIT, type ServiceSpec } from "./run-service.js";
export { configDoc } from "./config-doc.js";
