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
