/**
 * SamModel.load's precision: the option, $WGSAM_PRECISION, bad values, SAM 2.1's refusal and
 * the message on an adapter without shader-f16.
 */
import assert from "node:assert/strict";
import { SamModel } from "../../src/predictor.ts";
import { checkPrecision, parsePrecision, type Precision } from "../../src/precision.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { runDeno } from "../util/run_deno.ts";

Deno.test("SamModel.load: precision from the option, else $WGSAM_PRECISION, else f32", async () => {
  const saved = Deno.env.get("WGSAM_PRECISION");
  try {
    Deno.env.delete("WGSAM_PRECISION");
    const plain = await SamModel.load("sam-tiny");
    assert.equal(plain.precision, "f32");
    plain.dispose();
    Deno.env.set("WGSAM_PRECISION", "f16");
    const fromEnv = await SamModel.load("sam-tiny");
    assert.equal(fromEnv.precision, "f16");
    fromEnv.dispose();
    const explicit = await SamModel.load("sam-tiny", { precision: "f32" });
    assert.equal(explicit.precision, "f32");
    explicit.dispose();
    Deno.env.set("WGSAM_PRECISION", "half");
    await assert.rejects(
      () => SamModel.load("sam-tiny"),
      /WGSAM_PRECISION: precision must be "f32" or "f16", got "half"/,
    );
  } finally {
    if (saved === undefined) Deno.env.delete("WGSAM_PRECISION");
    else Deno.env.set("WGSAM_PRECISION", saved);
  }
  await assert.rejects(
    () => SamModel.load("sam-tiny", { precision: "bf16" as Precision }),
    /SamModel.load: precision must be "f32" or "f16", got "bf16"/,
  );
});

Deno.test("SamModel.load: SAM 2.1 refuses f16, saying which families have it", async () => {
  await assert.rejects(
    () => SamModel.load("sam2-tiny", { precision: "f16" }),
    /sam2-tiny is a SAM 2.1 model; precision "f16" covers the SAM 1 family/,
  );
});

Deno.test("precision f16 on an adapter without shader-f16: a clear error naming it", () => {
  const ctx = {
    gpu: { hasF16: false, provider: "dawn", description: "SwiftShader Device (Subzero)" },
  } as unknown as GpuContext;
  assert.throws(
    () => checkPrecision(ctx, "f16"),
    /needs the WebGPU feature "shader-f16", which this adapter \(dawn: SwiftShader Device \(Subzero\)\) does not offer; use precision "f32"/,
  );
  checkPrecision(ctx, "f32"); // f32 runs anywhere
  assert.equal(parsePrecision(" F16 ", "x"), "f16");
});

Deno.test("Dawn on SwiftShader (no shader-f16): segment --precision f16 says so and exits", async () => {
  const icd = "/usr/lib/chromium/vk_swiftshader_icd.json";
  try {
    Deno.statSync(icd);
  } catch {
    console.warn(`SKIP: ${icd} is not installed (chromium's SwiftShader)`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "wgsam-f16-dawn-" });
  try {
    const r = await runDeno(new URL("../../src/cli/segment.ts", import.meta.url), [
      new URL("../fixtures/sam-tiny/image.png", import.meta.url).pathname,
      ...["--point", "5,5", "--model", "sam-tiny", "--out", `${dir}/out`],
      ...["--gpu", "dawn", "--precision", "f16"],
    ], { env: { VK_ICD_FILENAMES: icd } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /precision "f16" needs the WebGPU feature "shader-f16"/);
    assert.match(r.stderr, /dawn: SwiftShader/);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
