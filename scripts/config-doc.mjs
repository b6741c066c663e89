// Writes docs/configuration.md from the configuration declarations (packages/cli/src/config-doc.ts).
// Run after `npm run build` whenever a variable changes; a test fails while the file is stale.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { configDoc } from "@unbroken/cli";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
writeFileSync(path.join(root, "docs", "configuration.md"), configDoc());
process.stderr.write("[config-doc] wrote docs/configuration.md\n");
