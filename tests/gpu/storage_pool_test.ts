/**
 * GpuContext's storage pool and bind-group cache (issue 14, item 2): inside `pooled`, a
 * destroyed tensor's buffer is reused by the next tensor of its size, once the work reading
 * it is submitted; outside, buffers are made and destroyed as before; a stale view destroyed
 * again never frees the buffer's new owner; bind groups are cached by kernel and buffers.
 */
import assert from "node:assert/strict";
import { getContext, type KernelSpec } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { add } from "../../src/kernels/add.ts";

Deno.test("storage pool: reuse after submit, stale views, outside `pooled` nothing is kept", async () => {
  const ctx = await getContext();
  const a = ctx.pooled(() => emptyTensor(ctx, [1000], "pool a"));
  const view = a.reshape([10, 100]);
  const before = ctx.pooledStorageBytes;
  a.destroy();
  assert.equal(ctx.pooledStorageBytes, before + 4000, "released into the pool");
  a.destroy(); // twice: ignored
  assert.equal(ctx.pooledStorageBytes, before + 4000);
  // Released with recorded work pending: not handed out until that work is submitted.
  const x = tensorFrom(ctx, new Float32Array(500).fill(1), [500]);
  const pending = ctx.pooled(() => add(ctx, x, x)); // recorded, not submitted
  pending.destroy();
  const early = ctx.pooled(() => emptyTensor(ctx, [500], "pool early"));
  assert.notEqual(early.buffer, pending.buffer, "the pending buffer waits for the submit");
  const c = ctx.pooled(() => emptyTensor(ctx, [1000], "pool c"));
  assert.equal(c.buffer, a.buffer, "a's buffer (released with nothing recorded: free at once)");
  ctx.submit();
  const d = ctx.pooled(() => emptyTensor(ctx, [500], "pool d"));
  assert.equal(d.buffer, pending.buffer, "free after the submit");
  // The stale view of `a` (now c's buffer) is destroyed: c keeps its buffer.
  view.destroy();
  const e = ctx.pooled(() => emptyTensor(ctx, [1000], "pool e"));
  assert.notEqual(e.buffer, c.buffer, "c's buffer stayed with c");
  assert.deepEqual(Array.from(await d.read()).slice(0, 3), [2, 2, 2], "d still holds x + x");
  // Outside `pooled`: a new buffer, destroyed (not pooled) on destroy.
  const plain = emptyTensor(ctx, [1000], "plain");
  assert.ok(![c.buffer, d.buffer, e.buffer].includes(plain.buffer));
  const pooledBefore = ctx.pooledStorageBytes;
  plain.destroy();
  assert.equal(ctx.pooledStorageBytes, pooledBefore);
  for (const t of [c, d, e, x, early]) t.destroy();
  ctx.submit();
  assert.ok(ctx.pooledStorageBytes > 0);
  ctx.trimStoragePool();
  assert.equal(ctx.pooledStorageBytes, 0, "trimmed");
  const f = ctx.pooled(() => emptyTensor(ctx, [1000], "pool f"));
  assert.ok(![a.buffer, c.buffer, e.buffer].includes(f.buffer), "a new buffer after the trim");
  f.destroy();
});

Deno.test("storage pool: poisonReused fills a reused buffer with NaN (what the decoder test relies on)", async () => {
  const ctx = await getContext();
  const a = ctx.pooled(() => tensorFrom(ctx, new Float32Array(300).fill(2), [300], "poison a"));
  a.destroy();
  ctx.submit();
  ctx.poisonReused = true;
  try {
    const b = ctx.pooled(() => emptyTensor(ctx, [300], "poison b"));
    assert.equal(b.buffer, a.buffer);
    const got = await b.read();
    assert.ok(got.every((v) => Number.isNaN(v)), "every value NaN");
    b.destroy();
  } finally {
    ctx.poisonReused = false;
  }
});

Deno.test("bind groups are cached by kernel and buffers; the uniform block still differs per dispatch", async () => {
  const ctx = await getContext();
  let created = 0;
  const createBindGroup = ctx.device.createBindGroup;
  ctx.device.createBindGroup = (desc: GPUBindGroupDescriptor) => {
    created++;
    return createBindGroup.call(ctx.device, desc);
  };
  const spec: KernelSpec = {
    name: "test_fill_index",
    bindings: ["uniform", "write"],
    code: () => `
struct P { value: f32, at: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[p.at] = p.value; }`,
  };
  const out = emptyTensor(ctx, [4], "bind group cache");
  const other = emptyTensor(ctx, [4], "bind group cache other");
  try {
    const params = (value: number, at: number) => {
      const buf = new ArrayBuffer(16);
      new Float32Array(buf)[0] = value;
      new Uint32Array(buf)[1] = at;
      return buf;
    };
    for (let i = 0; i < 4; i++) ctx.dispatch(spec, params(10 + i, i), [out.buffer], [1]);
    assert.equal(created, 1, "one bind group for four dispatches on the same buffer");
    ctx.dispatch(spec, params(7, 0), [other.buffer], [1]);
    assert.equal(created, 2, "another buffer, another bind group");
    assert.deepEqual(Array.from(await out.read()), [10, 11, 12, 13], "each its own uniform slot");
    assert.deepEqual(Array.from(await other.read()), [7, 0, 0, 0]);
  } finally {
    ctx.device.createBindGroup = createBindGroup;
    out.destroy();
    other.destroy();
  }
});
