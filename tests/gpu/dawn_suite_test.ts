/**
 * The parity checks again on the second WebGPU provider, Dawn (npm `webgpu`) on SwiftShader:
 * a child `deno test` with WGSAM_GPU=dawn runs the sam-tiny encoder stages, every sam-tiny
 * decoder case, a kernel with its error path, and the one-readback counts (which also run the
 * AMG's GPU batch on sam-tiny). SwiftShader runs our shared-memory kernels far slower than
 * lavapipe (a tiled 256^3 matmul: ~25x), so the AMG end to end on sam-tiny and sam-mini's
 * decoder cases join only with WGSAM_DAWN_FULL=1.
 *
 * SwiftShader's Vulkan driver comes with Debian's chromium package (.ci/run installs it).
 * Without it the test fails on CI ($CI set) and skips, saying so, elsewhere.
 */
import assert from "node:assert/strict";

const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";

/** [test file, --filter or null]: the parity checks that matter most, sized for 2 cores. */
const CHECKS: [string, string | null][] = [
  // One child per test: after readback_test's GPU-error step a later test of the same
  // Dawn process stalls (measured in that step's comment), so each check starts fresh and
  // the step runs (WGSAM_DAWN_ERROR_STEP=1) in the child with nothing after it.
  ["tests/gpu/readback_test.ts", "one readback per predict"],
  ["tests/gpu/readback_test.ts", "AMG: one readback"],
  ["tests/gpu/readback_test.ts", "Readback:"],
  ["tests/kernels/add_test.ts", null],
  ["tests/encoder/image_encoder_test.ts", "sam-tiny: every stage"],
  ["tests/decoder/decoder_sam_tiny_test.ts", null],
  ...(Deno.env.get("WGSAM_DAWN_FULL") === "1"
    ? [
      ["tests/amg/amg_sam_tiny_e2e_test.ts", "ModelMaskSource"] as [string, string],
      ["tests/decoder/decoder_sam_mini_test.ts", null] as [string, null],
    ]
    : []),
];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const root = new URL("../../", import.meta.url).pathname;

for (const [file, filter] of CHECKS) {
  Deno.test(`dawn + SwiftShader: ${file}${filter ? ` (${filter})` : ""}`, async () => {
    if (!exists(SWIFTSHADER_ICD)) {
      const msg = `${SWIFTSHADER_ICD} is missing (apt-get install chromium)`;
      if (Deno.env.get("CI")) throw new Error(`dawn suite: ${msg}`);
      console.warn(`SKIP: dawn suite: ${msg}`);
      return;
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-all", ...(filter ? ["--filter", filter] : []), file],
      cwd: root,
      env: {
        WGSAM_GPU: "dawn",
        VK_ICD_FILENAMES: SWIFTSHADER_ICD,
        NO_COLOR: "1",
        WGSAM_DAWN_ERROR_STEP: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (out.code !== 0) console.error(text.slice(-6000));
    assert.equal(out.code, 0, `${file} failed on Dawn (output above)`);
    assert.match(text, /wgsam: WebGPU: dawn, adapter: .*SwiftShader/i, "ran on Dawn");
    assert.match(text, /\bok \| [1-9]\d* passed/, "ran at least one test");
  });
}
