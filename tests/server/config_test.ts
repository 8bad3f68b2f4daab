/** Flags over environment over defaults; the default model from weights/. */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG, findDefaultModel, parseConfig } from "../../src/server/config.ts";

Deno.test("config: defaults, env, flags win, bad values refused", () => {
  const none = () => undefined;
  assert.deepEqual(parseConfig([], none), DEFAULT_CONFIG);
  const env: Record<string, string> = {
    WGSAM_HOST: "0.0.0.0",
    WGSAM_PORT: "9000",
    WGSAM_MODEL: "vit_b",
    WGSAM_CACHE_MB: "64",
  };
  const fromEnv = parseConfig([], (n) => env[n]);
  assert.deepEqual([fromEnv.host, fromEnv.port, fromEnv.model, fromEnv.cacheMb], [
    "0.0.0.0",
    9000,
    "vit_b",
    64,
  ]);
  const flags = parseConfig(
    ["--port", "0", "--model=weights/x.pth", "--cache-mb", "1.5", "--timeout-s", "10"],
    (n) => env[n],
  );
  assert.deepEqual([flags.host, flags.port, flags.model, flags.cacheMb, flags.timeoutS], [
    "0.0.0.0",
    0,
    "weights/x.pth",
    1.5,
    10,
  ]);
  assert.equal(parseConfig(["--help"], none).help, true);
  assert.equal(
    parseConfig([], (n) => (n === "WGSAM_DETECTOR" ? "d.onnx" : undefined)).detector,
    "d.onnx",
  );
  assert.equal(parseConfig(["--detector=e.onnx"], (n) => env[n]).detector, "e.onnx");
  for (
    const bad of [
      ["--port", "abc"],
      ["--port", "70000"],
      ["--port", "1.5"],
      ["--port"],
      ["--detector"],
      ["--cache-mb", "-1"],
      ["--bogus", "1"],
      ["serve"],
    ]
  ) {
    assert.throws(() => parseConfig(bad, none), Error, bad.join(" "));
  }
  assert.throws(() => parseConfig([], (n) => (n === "WGSAM_PORT" ? "NaN" : undefined)));
});

Deno.test("config: default model is the first safetensors, then the first pth", () => {
  const dir = Deno.makeTempDirSync();
  try {
    assert.equal(findDefaultModel(dir), null);
    Deno.writeTextFileSync(`${dir}/README.md`, "");
    Deno.writeTextFileSync(`${dir}/b.pth`, "");
    assert.equal(findDefaultModel(dir), `${dir}/b.pth`);
    Deno.writeTextFileSync(`${dir}/z.safetensors`, "");
    assert.equal(findDefaultModel(dir), `${dir}/z.safetensors`);
    assert.equal(findDefaultModel(`${dir}/missing`), null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config: origin and host lists, connection limits (#21.3, #21.7)", () => {
  const env: Record<string, string> = {
    WGSAM_ALLOW_ORIGIN: "http://a.test, http://b.test:3000",
    WGSAM_ALLOW_HOST: "seg.lan",
    WGSAM_MAX_CONNECTIONS: "32",
  };
  const fromEnv = parseConfig([], (n) => env[n]);
  assert.deepEqual(fromEnv.allowOrigin, ["http://a.test", "http://b.test:3000"]);
  assert.deepEqual(fromEnv.allowHost, ["seg.lan"]);
  assert.equal(fromEnv.maxConnections, 32);
  // Flags replace the environment's list, and repeat to grow it.
  const flags = parseConfig(
    ["--allow-origin", "http://c.test", "--allow-origin=http://d.test", "--idle-timeout-s", "2.5"],
    (n) => env[n],
  );
  assert.deepEqual(flags.allowOrigin, ["http://c.test", "http://d.test"]);
  assert.equal(flags.idleTimeoutS, 2.5);
  assert.equal(flags.headerTimeoutS, 20);
  for (
    const bad of [["--allow-host", ""], ["--max-connections", "0"], ["--header-timeout-s", "0"]]
  ) {
    assert.throws(() => parseConfig(bad, () => undefined), Error, bad.join(" "));
  }
});
