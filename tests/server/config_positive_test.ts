/**
 * Flags where 0 makes no sense (every GPU request a 504, every upload a 413, no cache...) must
 * be above 0; the server exits 2 with a clear message for them. --port 0 (a free port) and
 * --max-queue 0 (no waiting) stay valid.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/server/config.ts";
import { runDeno } from "../util/run_deno.ts";

const none = () => undefined;
const POSITIVE: [flag: string, env: string][] = [
  ["timeout-s", "WGSAM_TIMEOUT_S"],
  ["cache-mb", "WGSAM_CACHE_MB"],
  ["max-upload-mb", "WGSAM_MAX_UPLOAD_MB"],
  ["max-pixels", "WGSAM_MAX_PIXELS"],
  ["max-mask-pixels", "WGSAM_MAX_MASK_PIXELS"],
];

Deno.test("config: 0 is refused where it makes no sense, by flag and by environment", () => {
  for (const [flag, env] of POSITIVE) {
    for (const zero of ["0", "0.0", "-0"]) {
      assert.throws(
        () => parseConfig([`--${flag}=${zero}`], none),
        new RegExp(`--${flag} must be a positive (integer|number), got "${zero}"`),
      );
      assert.throws(
        () => parseConfig([], (n) => (n === env ? zero : undefined)),
        new RegExp(`--${flag} must be a positive`),
      );
    }
    assert.throws(() => parseConfig([`--${flag}=-3`], none), /must be a positive/);
  }
  const ok = parseConfig(
    ["--timeout-s", "0.5", "--cache-mb", "1", "--max-upload-mb", "0.25", "--max-pixels", "1"],
    none,
  );
  assert.deepEqual([ok.timeoutS, ok.cacheMb, ok.maxUploadMb, ok.maxPixels], [0.5, 1, 0.25, 1]);
  // 0 keeps its meaning where it has one.
  assert.equal(parseConfig(["--port", "0"], none).port, 0);
  assert.equal(parseConfig(["--max-queue", "0"], none).maxQueue, 0);
  // A time limit past setTimeout's range would fire at once.
  assert.throws(() => parseConfig(["--timeout-s", "1e10"], none), /--timeout-s must be at most/);
  assert.equal(parseConfig(["--timeout-s", "86400"], none).timeoutS, 86400);
});

Deno.test("serve: --timeout-s 0 exits 2 with a one-line message", async () => {
  const { code, stderr } = await runDeno(new URL("../../src/server.ts", import.meta.url), [
    "--timeout-s",
    "0",
  ]);
  assert.equal(code, 2, stderr);
  assert.equal(
    stderr,
    `serve: error: --timeout-s must be a positive number, got "0"\n` +
      "Run 'deno task serve --help' for usage.\n",
  );
});
