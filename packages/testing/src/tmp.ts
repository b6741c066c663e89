// Fresh temp directories for tests, removed on dispose.

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export interface TempDir extends AsyncDisposable {
  readonly path: string;
  remove(): Promise<void>;
}

/** mkdtemp under os.tmpdir(); use with `await using` or call remove(). */
export async function makeTempDir(prefix = "unbroken-"): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true });
  return { path: dir, remove, [Symbol.asyncDispose]: remove };
}
