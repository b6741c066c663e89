// Writes the tiny random-weight llama GGUF used by the llama generator's tests (about
// 0.6 MB, no download): `node scripts/write-tiny-gguf.mjs [file] [--seed N] [--corrupt KIND]`.
// KIND is truncated | shape | heads | garbage (see packages/testing/src/tiny-gguf.ts).
// A thin CLI over @unbroken/testing: run `npm run build` first.
//
//   node scripts/write-tiny-gguf.mjs /tmp/tiny.gguf
//   MODEL_PATH=/tmp/tiny.gguf GENERATOR=llama npm run worker

import { parseArgs } from "node:util";
import { writeCorruptGguf, writeTinyGguf } from "@unbroken/testing";

const KINDS = ["truncated", "shape", "heads", "garbage"];
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: "string", default: "1" },
    corrupt: { type: "string" },
  },
});

const file = positionals[0] ?? "tiny.gguf";
const seed = Number(values.seed);
if (!Number.isInteger(seed)) {
  process.stderr.write(`--seed must be an integer, got ${values.seed}\n`);
  process.exit(2);
}
if (values.corrupt !== undefined && !KINDS.includes(values.corrupt)) {
  process.stderr.write(`--corrupt must be one of ${KINDS.join(", ")}\n`);
  process.exit(2);
}

if (values.corrupt) await writeCorruptGguf(file, values.corrupt, { seed });
else await writeTinyGguf(file, { seed });
process.stdout.write(`${file}\n`);
