/**
 * The parity checks again on the second WebGPU provider, Dawn (npm `webgpu`) on SwiftShader:
 * a child `deno test` with WGSAM_GPU=dawn runs the sam-tiny encoder stages, every sam-tiny
 * decoder case, sam-mini's prompt encoder and all six of its decoder cases, the AMG on sam-tiny's
 * amg.json (the GPU path on the official decoder's logits, and end to end with our encoder and
 * decoder), a kernel with its error path, the Winograd 3x3 conv, a GPU error followed by more
 * work in the same process, and the one-readback counts.
 *
 * SwiftShader is a software adapter like lavapipe (ctx.gpu.software: the register-blocked GEMM,
 * rows attention and the barrier-free "rows" LayerNorms), but a workgroupBarrier costs it far
 * more: a 1M-float copy through workgroup memory with one barrier took 2.0 s there against
 * 22 ms on lavapipe. With the rows LayerNorms sam-mini's whole decoder file took 77 s there
 * (2 loaded cores; each case 7-22 s), so all six cases run.
 *
 * SwiftShader's Vulkan driver comes with Debian's chromium package (.ci/run installs it).
 * Without it the test fails on CI ($CI set) and skips, saying so, elsewhere.
 */
import assert from "node:assert/strict";

const SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";

/** [test file, --filter or null]: the parity checks that matter most, sized for 2 cores. */
const CHECKS: [string, string | null][] = [
  // The GPU-error step runs with tests after it in the same process (see dawn_poll_test.ts).
  ["tests/gpu/readback_test.ts", "/one readback per predict|AMG: one readback|Readback:/"],
  ["tests/gpu/dawn_poll_test.ts", null],
  ["tests/kernels/add_test.ts", null],
  ["tests/kernels/conv3x3_winograd_test.ts", null],
  ["tests/encoder/image_encoder_test.ts", "sam-tiny: every stage"],
  ["tests/decoder/decoder_sam_tiny_test.ts", null],
  ["tests/decoder/decoder_sam_mini_test.ts", null],
  ["tests/amg/amg_model_source_test.ts", null],
  ["tests/amg/amg_sam_tiny_e2e_test.ts", "ModelMaskSource"],
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
