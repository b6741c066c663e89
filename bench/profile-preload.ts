// Preloaded (NODE_OPTIONS=--import) into our processes when BENCH_CPU_PROFILE_DIR is set:
// a V8 CPU profile of the whole life of the process, written as
// <dir>/CPU.<pid>.cpuprofile when it exits, the same format `node --cpu-prof` writes
// (which Node 20 does not accept in NODE_OPTIONS). The in-process inspector session
// answers synchronously, so the profile can be written from the 'exit' handler.

import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import path from "node:path";

const dir = process.env.BENCH_CPU_PROFILE_DIR;

if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  session.post("Profiler.start");
  process.on("exit", () => {
    session.post("Profiler.stop", (err, result) => {
      if (!err) writeFileSync(path.join(dir, `CPU.${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
