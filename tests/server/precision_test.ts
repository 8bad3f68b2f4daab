/**
 * serve's precision: --precision / WGSAM_PRECISION parsed with the other flags, carried to the
 * engine's thread, and reported by GET /api/info (model.precision).
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { parseConfig } from "../../src/server/config.ts";
import { UsageError } from "../../src/cli/args.ts";
import { loadWorkerEngine } from "../../src/server/worker_engine.ts";
import { call } from "./helpers.ts";

Deno.test("serve config: --precision over WGSAM_PRECISION over f32; bad values refused", () => {
  const none = () => undefined;
  assert.equal(parseConfig([], none).precision, "f32");
  assert.equal(parseConfig(["--precision", "f16"], none).precision, "f16");
  const env = (name: string) => (name === "WGSAM_PRECISION" ? "f16" : undefined);
  assert.equal(parseConfig([], env).precision, "f16");
  assert.equal(parseConfig(["--precision=f32"], env).precision, "f32");
  assert.throws(
    () => parseConfig(["--precision", "fp8"], none),
    (e) => e instanceof UsageError && /precision must be "f32" or "f16", got "fp8"/.test(e.message),
  );
});

Deno.test("serve: the engine thread loads in f16 and /api/info says so", async () => {
  for (const precision of ["f16", "f32"] as const) {
    const engine = await loadWorkerEngine("sam-tiny", {
      cacheBytes: 16 << 20,
      quiet: true,
      precision,
    });
    try {
      const app = createApp({ engine, log: () => {} });
      const info = await call(app, "GET", "/api/info");
      assert.equal(info.status, 200);
      assert.equal((info.json.model as { precision: string }).precision, precision);
    } finally {
      engine.dispose();
    }
  }
});
