import assert from "node:assert/strict";
import { getDevice, isSoftwareAdapter } from "../../src/gpu/device.ts";

Deno.test("software adapters are told apart from GPUs, by description or the fallback flag", async () => {
  assert.equal(isSoftwareAdapter({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }), true);
  assert.equal(isSoftwareAdapter({ description: "SwiftShader Device (Subzero)" }), true);
  assert.equal(isSoftwareAdapter({ description: "NVIDIA H100 80GB HBM3" }), false);
  assert.equal(isSoftwareAdapter({ description: "", isFallbackAdapter: true }), true);
  // The device this suite runs on: CI's llvmpipe must be flagged, so benches shrink there.
  const gpu = await getDevice();
  assert.ok(gpu.description.length > 0);
  if (/llvmpipe/i.test(gpu.description)) assert.equal(gpu.software, true);
});

Deno.test("provider choice: names checked, --gpu taken out of the arguments, bad values refused", async () => {
  const { parseGpuChoice, resolveGpuChoice } = await import("../../src/gpu/device.ts");
  const { takeGpuFlag } = await import("../../src/gpu/gpu_flag.ts");
  assert.equal(parseGpuChoice("Dawn"), "dawn");
  assert.equal(resolveGpuChoice("deno"), "deno");
  assert.throws(() => parseGpuChoice("vulkan", "--gpu"), /--gpu: 'vulkan' is not a GPU provider/);
  const args = ["photo.jpg", "--gpu", "dawn", "--point", "1,2", "--gpu=deno", "--", "--gpu"];
  assert.equal(takeGpuFlag(args), "deno");
  assert.deepEqual(args, ["photo.jpg", "--point", "1,2", "--", "--gpu"]);
  assert.throws(() => takeGpuFlag(["--gpu"]), /--gpu needs a value/);
  assert.throws(() => takeGpuFlag(["--gpu", "--point"]), /--gpu needs a value/);
});

Deno.test("a CLI given a bad --gpu exits 2 before loading anything", async () => {
  const { runDeno } = await import("../util/run_deno.ts");
  for (const cli of ["segment.ts", "amg.ts"]) {
    const out = await runDeno(new URL(`../../src/cli/${cli}`, import.meta.url), [
      "--gpu",
      "opengl",
    ]);
    assert.equal(out.code, 2, `${cli}: ${out.stderr}`);
    assert.match(out.stderr, /--gpu: 'opengl' is not a GPU provider \(use auto, deno, dawn\)/);
  }
});
