/**
 * A GPU error, then long GPU waits and more work, in one process, on whichever provider runs it
 * ($WGSAM_GPU; tests/gpu/dawn_suite_test.ts runs it on Dawn). On Dawn it also checks that a long
 * wait is polled about once per ms, not tens of thousands of times a second: that busy polling, not
 * the error, stalled the next test after readback_test's error step (see src/gpu/dawn_pump.ts).
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { dawnPolls } from "../../src/gpu/dawn_pump.ts";

/** Invocations (64 per workgroup) counting to 50000 each: GPU time on a software adapter. */
const COUNT = 50_000; // llvmpipe stops an invocation's loops after ~65535 iterations in all
const WORKGROUPS = 64;
const countTo = {
  name: "poll_test_count",
  bindings: ["write"] as const,
  code: () =>
    `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  var k = 0u;
  for (var i = 0u; i < ${COUNT}u; i++) { k = k + 1u + (i & g.x & 0u); }
  out[g.x] = k;
}`,
};

Deno.test("a GPU error, then long GPU waits and more work in the same process (Dawn: polled ~1 per ms)", async (t) => {
  const ctx = await getContext();
  const out = ctx.device.createBuffer({
    size: 4 * 64 * WORKGROUPS,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  try {
    if (/swiftshader/i.test(ctx.gpu.description)) {
      await t.step(
        "SwiftShader is a software adapter (the CPU GEMM and attention defaults)",
        () => {
          assert.equal(ctx.gpu.software, true, ctx.gpu.description);
        },
      );
    }
    await t.step("the error surfaces at the next readback, naming its kernel", async () => {
      const broken = {
        name: "deliberately_broken_poll_test",
        bindings: ["write"] as const,
        code: () => "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
      };
      ctx.dispatch(broken, null, [out], [1]);
      await assert.rejects(() => ctx.read(out), /deliberately_broken_poll_test/);
    });
    // On Dawn 10 rounds of ~1 s each on SwiftShader (2 busy cores): about as much waiting as
    // made the unthrottled polling stall (~330 thousand polls in one process). Elsewhere 2.
    let waitedMs = 0;
    const before = { ...dawnPolls };
    for (let round = 0; round < (ctx.gpu.provider === "dawn" ? 10 : 2); round++) {
      const t0 = performance.now();
      ctx.dispatch(countTo, null, [out], [WORKGROUPS]);
      const got = new Uint32Array(await ctx.read(out));
      waitedMs += performance.now() - t0;
      assert.ok(got.every((k) => k === COUNT), `round ${round}: the kernel after the error ran`);
    }
    const polls = dawnPolls.immediate - before.immediate + dawnPolls.deferred - before.deferred;
    console.log(
      `${ctx.gpu.provider}: ${(waitedMs / 1000).toFixed(1)} s of GPU waits, ${polls} Dawn polls`,
    );
    if (ctx.gpu.provider === "dawn") {
      await t.step(
        "Dawn polled the long waits about once per ms (unthrottled: 20-50 per ms)",
        () => {
          const deferred = dawnPolls.deferred - before.deferred;
          assert.ok(waitedMs > 100, `the waits were long enough to tell (${waitedMs} ms)`);
          assert.ok(deferred > 0, "Dawn's polls went through the throttle");
          // Deferred polls wait >= 1 ms each; each wait polls at full rate for its first 5 ms.
          assert.ok(deferred <= waitedMs, `${deferred} deferred polls in ${waitedMs} ms`);
          assert.ok(polls < waitedMs + 10 * 1000, `${polls} polls in ${waitedMs.toFixed(0)} ms`);
        },
      );
    }
    await t.step("small readbacks after it are still prompt", async () => {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) await ctx.read(out, 0, 4);
      const ms = (performance.now() - t0) / 20;
      console.log(`${ctx.gpu.provider}: ${ms.toFixed(2)} ms per small readback`);
      // Deno's WebGPU polls every ~10 ms; Dawn's first polls are immediate (dawn_pump.ts).
      assert.ok(ms < (ctx.gpu.provider === "dawn" ? 8 : 40), `${ms} ms per readback`);
    });
  } finally {
    out.destroy();
  }
});
