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
