// Baseline 1: a plain SSE server on node:http. POST /v1/generate streams one response as
// `id: <seq>` + `data: <event frame>` per event; GET /v1/idle holds an event stream open
// with nothing in it (the idle-connection baseline). Closing the request aborts the
// generation: there is no log to come back to.

import { serveSse } from "./common.js";
import { generate } from "./generate.js";

serveSse((body, res) => {
  const abort = new AbortController();
  res.on("close", () => abort.abort());
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  generate(body, abort.signal, (seq, frame) => res.write(`id: ${seq}\ndata: ${frame}\n\n`)).then(
    () => res.end(),
    () => res.destroy(),
  );
});
