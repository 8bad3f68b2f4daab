/**
 * What the automatic mask generator needs of a batch of mask logits, computed on the GPU so
 * that the logits never travel to the CPU:
 *
 * - `maskStats`: per mask of logits (N, h, w), in one pass, the pixel counts above
 *   threshold + offset and above threshold - offset (the stability score is their float32
 *   ratio) and the XYXY box (inclusive extreme pixels) of the logits above the threshold.
 *   Exactly as `logitMaskStats` (src/amg/utils.ts) and the official `calculate_stability_score`
 *   / `batched_mask_to_box`: strict `>` against float32 thresholds; integer counts summed per
 *   row into an int16 (wrapping as torch's would past 32767), then into an int32.
 * - `packMasks`: the binary masks (logits > threshold) of chosen masks only, 32 pixels a
 *   u32 word, so a read-back moves 1/32 of the logits' bytes and only for kept masks.
 *
 * One workgroup handles one row of one mask: its threads count the row in workgroup atomics,
 * then one thread adds the row into the mask's global slot (global atomics). A slot starts
 * at zero, so the box is kept in a zero-based encoding (see `MaskStatsBuffer`).
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { Params, type Tensor } from "../gpu/tensor.ts";

/** Threads per workgroup of the statistics kernel (one workgroup per mask row). */
const STATS_WG = 128;
/** Threads per workgroup of the packing kernel (one thread per output word). */
const PACK_WG = 256;
/** i32 words per mask slot: inter, union, w-left, right+1, h-top, bottom+1, 2 unused. */
export const STATS_WORDS = 8;

const MASK_STATS: KernelSpec = {
  name: "mask_stats_f32",
  bindings: ["uniform", "read", "write"],
  code: () => /* wgsl */ `
struct P { rows: u32, h: u32, w: u32, slot0: u32, thr: f32, hi: f32, lo: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<atomic<i32>>;

var<workgroup> rowHi: atomic<u32>;
var<workgroup> rowLo: atomic<u32>;
var<workgroup> rowLeft: atomic<u32>;  // max of (w - x) over set pixels: 0 = none
var<workgroup> rowRight: atomic<u32>; // max of (x + 1) over set pixels: 0 = none

// Row counts go through an int16 as the official's per-row sum does (torch sums a bool
// row into int16), then into the int32 total.
fn asInt16(c: u32) -> i32 {
  return bitcast<i32>(c << 16u) >> 16u;
}

@compute @workgroup_size(${STATS_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x; // workgroup-uniform: (mask, y) flattened
  if (row >= p.rows) { return; }
  let base = row * p.w;
  var hi = 0u;
  var lo = 0u;
  var left = 0u;
  var right = 0u;
  for (var x = lid; x < p.w; x += ${STATS_WG}u) {
    let v = logits[base + x];
    if (v > p.lo) { lo += 1u; }
    if (v > p.hi) { hi += 1u; }
    if (v > p.thr) {
      left = max(left, p.w - x);
      right = max(right, x + 1u);
    }
  }
  if (lo > 0u) { atomicAdd(&rowLo, lo); }
  if (hi > 0u) { atomicAdd(&rowHi, hi); }
  if (right > 0u) {
    atomicMax(&rowLeft, left);
    atomicMax(&rowRight, right);
  }
  workgroupBarrier();
  if (lid != 0u) { return; }
  let mask = row / p.h;
  let y = row - mask * p.h;
  let s = (p.slot0 + mask) * ${STATS_WORDS}u;
  let cHi = atomicLoad(&rowHi);
  let cLo = atomicLoad(&rowLo);
  if (cHi > 0u) { atomicAdd(&stats[s], asInt16(cHi)); }
  if (cLo > 0u) { atomicAdd(&stats[s + 1u], asInt16(cLo)); }
  let r = atomicLoad(&rowRight);
  if (r > 0u) {
    atomicMax(&stats[s + 2u], i32(atomicLoad(&rowLeft)));
    atomicMax(&stats[s + 3u], i32(r));
    atomicMax(&stats[s + 4u], i32(p.h - y));
    atomicMax(&stats[s + 5u], i32(y + 1u));
  }
}`,
};

const PACK_MASKS: KernelSpec = {
  name: "mask_pack_bits_f32",
  bindings: ["uniform", "read", "read", "write"],
  code: () => /* wgsl */ `
struct P { words: u32, wordsPerMask: u32, plane: u32, thr: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> bits: array<u32>;

@compute @workgroup_size(${PACK_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${PACK_WG}u;
  if (i >= p.words) { return; }
  let k = i / p.wordsPerMask;
  let first = (i - k * p.wordsPerMask) * 32u; // first pixel of this word in its mask
  let src = indices[k] * p.plane;
  let n = min(32u, p.plane - first);
  var word = 0u;
  for (var b = 0u; b < n; b++) {
    if (logits[src + first + b] > p.thr) { word |= 1u << b; }
  }
  bits[i] = word;
}`,
};

/**
 * A GPU buffer of per-mask statistic slots (`STATS_WORDS` i32 each). A slot must be written
 * by exactly one `maskStats` call: slots start at zero and the kernel accumulates into them.
 */
export interface MaskStatsBuffer {
  buffer: GPUBuffer;
  /** Number of slots. */
  count: number;
}

/** Allocates `count` zeroed slots (WebGPU zero-fills new buffers). */
export function createMaskStatsBuffer(ctx: GpuContext, count: number): MaskStatsBuffer {
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`createMaskStatsBuffer: need at least one slot, got ${count}`);
  }
  const buffer = ctx.device.createBuffer({
    label: "mask_stats.out",
    size: count * STATS_WORDS * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  return { buffer, count };
}

export interface MaskStatsOptions {
  /** Logit threshold of a mask (SAM's mask_threshold, 0.0). */
  maskThreshold: number;
  /** Offset of the two stability thresholds (stability_score_offset). */
  stabilityOffset: number;
  /** Slots to write into (fresh, see MaskStatsBuffer); default: a new buffer of N slots. */
  out?: MaskStatsBuffer;
  /** Slot of the first mask in `out` (for a batch computed in chunks). Default 0. */
  firstSlot?: number;
}

/**
 * Records the statistics of the masks of `logits` (N, h, w) into slots firstSlot..+N of a
 * stats buffer, which it returns. Read them with `readMaskStats`.
 */
export function maskStats(
  ctx: GpuContext,
  logits: Tensor,
  opts: MaskStatsOptions,
): MaskStatsBuffer {
  if (logits.shape.length !== 3) {
    throw new Error(`maskStats: logits must be (N, h, w), got [${logits.shape.join(", ")}]`);
  }
  const [n, h, w] = logits.shape;
  const firstSlot = opts.firstSlot ?? 0;
  const out = opts.out ?? createMaskStatsBuffer(ctx, Math.max(n, 1));
  if (!Number.isInteger(firstSlot) || firstSlot < 0 || firstSlot + n > out.count) {
    throw new Error(
      `maskStats: ${n} masks from slot ${firstSlot} do not fit a buffer of ${out.count} slots`,
    );
  }
  // Pixel indices are u32 in the shader; a storage binding is far smaller anyway.
  if (n * h * w >= 2 ** 32) throw new Error(`maskStats: ${n}x${h}x${w} logits are too many`);
  const t = Math.fround(opts.maskThreshold);
  const params = new Params()
    .u32(n * h, h, w, firstSlot)
    .f32(t, opts.maskThreshold + opts.stabilityOffset, opts.maskThreshold - opts.stabilityOffset)
    .build();
  ctx.dispatch(MASK_STATS, params, [logits.buffer, out.buffer], grid(n * h));
  return out;
}

export interface MaskStatsResult {
  /** Pixels above threshold + offset (int32, as the official sums them). */
  intersections: Int32Array;
  /** Pixels above threshold - offset. */
  unions: Int32Array;
  /** float32 intersections / unions (NaN for an empty union, as 0/0 in torch). */
  stability: Float32Array;
  /** (count, 4) XYXY boxes of logits > threshold; [0,0,0,0] for an empty mask. */
  boxes: Int32Array;
}

/** Reads slots first..first+count of a stats buffer of masks of size h x w. */
export async function readMaskStats(
  ctx: GpuContext,
  stats: MaskStatsBuffer,
  h: number,
  w: number,
  first = 0,
  count = stats.count - first,
): Promise<MaskStatsResult> {
  if (first < 0 || count < 0 || first + count > stats.count) {
    throw new Error(`readMaskStats: slots ${first}..${first + count} of ${stats.count}`);
  }
  const raw = count === 0 ? new Int32Array(0) : new Int32Array(
    await ctx.read(stats.buffer, first * STATS_WORDS * 4, count * STATS_WORDS * 4),
  );
  return parseMaskStats(raw, h, w);
}

/** Decodes `raw.length / STATS_WORDS` stats slots read back from a MaskStatsBuffer. */
export function parseMaskStats(raw: Int32Array, h: number, w: number): MaskStatsResult {
  const count = raw.length / STATS_WORDS;
  const intersections = new Int32Array(count);
  const unions = new Int32Array(count);
  const stability = new Float32Array(count);
  const boxes = new Int32Array(count * 4);
  for (let i = 0; i < count; i++) {
    const s = raw.subarray(i * STATS_WORDS, (i + 1) * STATS_WORDS);
    intersections[i] = s[0];
    unions[i] = s[1];
    stability[i] = s[0] / s[1];
    if (s[3] > 0) boxes.set([w - s[2], h - s[4], s[3] - 1, s[5] - 1], i * 4);
  }
  return { intersections, unions, stability, boxes };
}

/**
 * Packs the binary masks (logits > maskThreshold) of the masks `indices` of logits (N, h, w),
 * in that order, into a new buffer: mask k occupies words k*ceil(h*w/32).., bit b of word j
 * being pixel 32j+b (row-major). Read and unpack with `readPackedMasks`.
 */
export function packMasks(
  ctx: GpuContext,
  logits: Tensor,
  indices: readonly number[],
  maskThreshold: number,
): PackedMasks {
  if (logits.shape.length !== 3) {
    throw new Error(`packMasks: logits must be (N, h, w), got [${logits.shape.join(", ")}]`);
  }
  const [n, h, w] = logits.shape;
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new Error(`packMasks: mask index ${i} outside 0..${n - 1}`);
    }
  }
  const plane = h * w;
  const wordsPerMask = Math.ceil(plane / 32);
  const words = indices.length * wordsPerMask;
  const bits = ctx.device.createBuffer({
    label: "mask_pack_bits.out",
    size: Math.max(words, 1) * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const packed: PackedMasks = { buffer: bits, count: indices.length, height: h, width: w };
  if (words === 0) return packed;
  const indexBuffer = ctx.device.createBuffer({
    label: "mask_pack_bits.indices",
    size: indices.length * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  ctx.device.queue.writeBuffer(indexBuffer, 0, Uint32Array.from(indices));
  const params = new Params().u32(words, wordsPerMask, plane).f32(maskThreshold).build();
  ctx.dispatch(
    PACK_MASKS,
    params,
    [logits.buffer, indexBuffer, bits],
    grid(Math.ceil(words / PACK_WG)),
  );
  packed.release = () => indexBuffer.destroy();
  return packed;
}

export interface PackedMasks {
  buffer: GPUBuffer;
  count: number;
  height: number;
  width: number;
  /** Frees the helper buffers of the dispatch (after it has run). */
  release?: () => void;
}

/** Reads packed masks back as row-major 0/1 masks; frees the packed buffers. */
export async function readPackedMasks(ctx: GpuContext, packed: PackedMasks): Promise<Uint8Array[]> {
  const plane = packed.height * packed.width;
  const wordsPerMask = Math.ceil(plane / 32);
  try {
    if (packed.count === 0) return [];
    const words = new Uint32Array(
      await ctx.read(packed.buffer, 0, packed.count * wordsPerMask * 4),
    );
    const masks: Uint8Array[] = [];
    for (let k = 0; k < packed.count; k++) masks.push(unpackBits(words, k * wordsPerMask, plane));
    return masks;
  } finally {
    packed.release?.();
    packed.buffer.destroy();
  }
}

/**
 * Row-major 0/1 mask of `plane` pixels from 32-pixel words (bit b of word j = pixel 32j+b)
 * starting at word `first`: the layout of `packMasks` and of samPostprocess's "bits".
 */
export function unpackBits(words: Uint32Array, first: number, plane: number): Uint8Array {
  const mask = new Uint8Array(plane);
  for (let j = 0; j * 32 < plane; j++) {
    const word = words[first + j];
    if (word === 0) continue;
    const n = Math.min(32, plane - j * 32);
    for (let b = 0; b < n; b++) mask[j * 32 + b] = (word >>> b) & 1;
  }
  return mask;
}
