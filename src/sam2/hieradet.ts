/**
 * Hiera, SAM 2's image trunk (the official `modeling/backbones/hieradet.py`), on our kernels:
 *
 *   patch embed: 7x7 stride-4 conv (pad 3), (3, S, S) -> [S/4, S/4, E]
 *   + pos embed: the (E, 7, 7) background bicubic-interpolated to the grid, plus the
 *     (E, w0, w0) window embedding tiled over it (input-independent: computed once at load)
 *   MultiScaleBlocks, stage k of width E * 2^k with heads * 2^k:
 *     xn = norm1(x)
 *     shortcut = pool(proj(xn)) at a width change (pool: 2x2 max, at q-pool blocks), else x
 *     windowed (window w, zero padding after norm1) or global attention over qkv(xn); at a
 *     q-pool block the queries are max-pooled 2x2 inside each window (w -> w/2) so the
 *     output grid halves
 *     x = shortcut + proj(attn);  x = x + mlp(norm2(x))   (GELU MLP, ratio 4)
 *   outputs: the last block of every stage, [H_k, W_k, C_k] token-major.
 *
 * Activations live in a fixed BufferSet sized from the arch (hieraBufferSizes), reused by every
 * pass.
 */
import type { GpuContext } from "../gpu/context.ts";
import { type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { add } from "../kernels/add.ts";
import { attention, type HeadsView } from "../kernels/attention.ts";
import { conv2d } from "../kernels/conv2d.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { maxPool2x2 } from "../kernels/max_pool.ts";
import { windowPartition, windowUnpartition } from "../kernels/window.ts";
import { tensorF32 } from "../weights/load.ts";
import type { HostTensor, StateDict } from "../weights/types.ts";
import { type Sam2Arch, stageEndsOf } from "./arch.ts";
import { BufferSet } from "./buffers.ts";

/** Hiera's LayerNorms use eps 1e-6. */
const LN_EPS = 1e-6;

/** The sizes one block works with. */
export interface HieraBlockPlan {
  index: number;
  stage: number;
  dimIn: number;
  dimOut: number;
  heads: number;
  /** Window side (0: global attention over the whole grid). */
  window: number;
  /** Queries (and the shortcut) max-pooled 2x2: the grid halves. */
  pool: boolean;
  /** Input grid h x w and output grid ho x wo. */
  h: number;
  w: number;
  ho: number;
  wo: number;
  /** Attention batch (windows, or 1 when global) and its query / key counts. */
  batch: number;
  nq: number;
  nk: number;
  /**
   * The MLP's hidden columns in this many slices, so that no hidden activation exceeds the
   * storage binding limit (1 but for Hiera-L's first stage on a 128 MB device).
   */
  mlpChunks: number;
}

/**
 * Slices of `hidden` columns of equal width (the last may be narrower) such that one slice of
 * a hidden activation of `bytes` fits `limit`: ceil(hidden / width) with the widest width that
 * fits.
 */
function mlpSliceCount(hidden: number, bytes: number, limit: number): number {
  const wanted = Math.max(1, Math.ceil(bytes / limit));
  return Math.ceil(hidden / Math.ceil(hidden / wanted));
}

/**
 * Every block's sizes for the arch, in order; `maxBindingBytes` (the device's storage binding
 * limit) decides how the MLP hidden layer is sliced.
 */
export function hieraBlocks(arch: Sam2Arch, maxBindingBytes = Infinity): HieraBlockPlan[] {
  const t = arch.trunk;
  const blocks: HieraBlockPlan[] = [];
  let h = arch.imgSize / 4, w = h, dim = t.embedDim, i = 0;
  t.stages.forEach((n, stage) => {
    for (let j = 0; j < n; j++, i++) {
      const dimOut = t.stageDims[stage];
      const pool = t.qPoolBlocks.includes(i);
      const window = t.blockWindowSizes[i];
      const ho = pool ? Math.floor(h / 2) : h, wo = pool ? Math.floor(w / 2) : w;
      let batch = 1, nq = ho * wo, nk = h * w;
      if (window > 0) {
        batch = Math.ceil(h / window) * Math.ceil(w / window);
        nk = window * window;
        const wq = pool ? window / 2 : window;
        nq = wq * wq;
        if (pool) {
          // The pooled windows must tile the pooled grid as the official unpartition assumes.
          if (window % 2 !== 0 || h % 2 !== 0 || w % 2 !== 0) {
            throw new Error(`Hiera block ${i}: q-pooling a ${h}x${w} grid in windows of ${window}`);
          }
          if (Math.ceil(ho / wq) * Math.ceil(wo / wq) !== batch) {
            throw new Error(`Hiera block ${i}: pooled windows do not tile ${ho}x${wo}`);
          }
        }
      } else if (pool && (h % 2 !== 0 || w % 2 !== 0)) {
        throw new Error(`Hiera block ${i}: q-pooling an odd ${h}x${w} grid`);
      }
      blocks.push({
        index: i,
        stage,
        dimIn: dim,
        dimOut,
        heads: t.stageHeads[stage],
        window,
        pool,
        h,
        w,
        ho,
        wo,
        batch,
        nq,
        nk,
        mlpChunks: mlpSliceCount(
          dimOut * t.mlpRatio,
          4 * ho * wo * dimOut * t.mlpRatio,
          maxBindingBytes,
        ),
      });
      dim = dimOut;
      h = ho;
      w = wo;
    }
  });
  return blocks;
}

export type HieraBuffer =
  | "input"
  | "x"
  | "x2"
  | "tok"
  | "part"
  | "big"
  | "q"
  | "attn"
  | "short"
  | "k"
  | "v";

/** Elements of each activation buffer (see the lifetimes in HieraTrunk.block). */
export function hieraBufferSizes(
  arch: Sam2Arch,
  maxBindingBytes = Infinity,
): Record<HieraBuffer, number> {
  const S = arch.imgSize, g0 = S / 4;
  const sizes: Record<HieraBuffer, number> = {
    input: 3 * S * S,
    x: g0 * g0 * arch.trunk.embedDim,
    x2: g0 * g0 * arch.trunk.embedDim,
    tok: 0,
    part: 0,
    // The patch embedding's unfolded input: [g0 * g0, 3 * 7 * 7].
    big: g0 * g0 * 147,
    q: 0,
    attn: 0,
    short: 0,
    k: 0,
    v: 0,
  };
  const grow = (k: HieraBuffer, n: number) => (sizes[k] = Math.max(sizes[k], n));
  for (const b of hieraBlocks(arch, maxBindingBytes)) {
    const inTok = b.h * b.w, outTok = b.ho * b.wo;
    const hiddenSlice = Math.ceil((b.dimOut * arch.trunk.mlpRatio) / b.mlpChunks);
    grow("x", Math.max(inTok * b.dimIn, outTok * b.dimOut));
    grow("x2", outTok * b.dimOut);
    grow("tok", Math.max(inTok * b.dimIn, outTok * b.dimOut));
    const rows = b.window > 0 ? b.batch * b.nk : inTok;
    if (b.window > 0) grow("part", rows * b.dimIn);
    // q-pool blocks: q, k, v apart (see HieraTrunk.block); the others: one fused qkv.
    grow(
      "big",
      Math.max(rows * (b.pool ? 1 : 3) * b.dimOut, outTok * hiddenSlice),
    );
    if (b.pool) {
      grow("k", rows * b.dimOut);
      grow("v", rows * b.dimOut);
    }
    if (b.dimIn !== b.dimOut) grow("big", inTok * b.dimOut);
    if (b.pool) grow("q", b.batch * b.nq * b.dimOut);
    if (b.dimIn !== b.dimOut) grow("short", outTok * b.dimOut);
    // Also the second MLP accumulator of a sliced MLP: [outTok, dimOut] fits (padded rows).
    grow("attn", Math.max(b.batch * b.nq, outTok) * b.dimOut);
  }
  return sizes;
}

/** One slice of hidden columns [c0, c1) of a block's MLP: layers.0 rows, layers.1 columns. */
interface MlpSlice {
  w0: Tensor;
  b0: Tensor;
  w1: Tensor;
  /** layers.1's bias, on the first slice only. */
  b1: Tensor | null;
}

interface BlockWeights {
  plan: HieraBlockPlan;
  norm1: [Tensor, Tensor];
  /** The fused qkv projection (blocks that do not pool). */
  qkv: [Tensor, Tensor] | null;
  /** Its q, k and v rows as three projections (q-pool blocks; see block()). */
  qkvSplit: [Tensor, Tensor][] | null;
  attnProj: [Tensor, Tensor];
  norm2: [Tensor, Tensor];
  /** mlp.layers.0 / .1 as uploaded: whole, or sliced along the hidden columns. */
  mlp: MlpSlice[];
  /** The dim-changing shortcut projection (width changes only). */
  proj: [Tensor, Tensor] | null;
}

/**
 * Hiera's position embedding for a gh x gw grid, token-major [gh, gw, E]:
 * F.interpolate(pos_embed, (gh, gw), mode="bicubic") (align_corners False, A = -0.75, edge
 * clamped) plus pos_embed_window tiled. Computed in float64, rounded once.
 */
export function hieraPosEmbed(
  bkg: Float32Array,
  bkgH: number,
  bkgW: number,
  win: Float32Array,
  winSize: number,
  E: number,
  gh: number,
  gw: number,
): Float32Array {
  if (gh % winSize !== 0 || gw % winSize !== 0) {
    throw new Error(`Hiera pos embed: ${gh}x${gw} grid is not tiled by ${winSize}x${winSize}`);
  }
  const A = -0.75;
  const cc1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const cc2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  const taps = (inSize: number, outSize: number) => {
    const scale = Math.fround(inSize / outSize);
    const idx: number[][] = [], wts: number[][] = [];
    for (let o = 0; o < outSize; o++) {
      const real = scale * (o + 0.5) - 0.5;
      const i0 = Math.floor(real), t = real - i0;
      idx.push([-1, 0, 1, 2].map((d) => Math.min(Math.max(i0 + d, 0), inSize - 1)));
      wts.push([cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)]);
    }
    return { idx, wts };
  };
  const ty = taps(bkgH, gh), tx = taps(bkgW, gw);
  const out = new Float32Array(gh * gw * E);
  for (let c = 0; c < E; c++) {
    const plane = c * bkgH * bkgW;
    for (let y = 0; y < gh; y++) {
      for (let x = 0; x < gw; x++) {
        let v = 0;
        for (let a = 0; a < 4; a++) {
          let row = 0;
          for (let b = 0; b < 4; b++) {
            row += bkg[plane + ty.idx[y][a] * bkgW + tx.idx[x][b]] * tx.wts[x][b];
          }
          v += row * ty.wts[y][a];
        }
        const wv = win[(c * winSize + (y % winSize)) * winSize + (x % winSize)];
        out[(y * gw + x) * E + c] = Math.fround(v) + wv;
      }
    }
  }
  return out;
}

/** The Hiera trunk of one model: weights on the GPU and its activation buffers. */
export class HieraTrunk {
  readonly blocks: HieraBlockPlan[];
  readonly buffers: BufferSet<HieraBuffer>;
  private readonly weights: Tensor[] = [];
  private readonly patchW: Tensor;
  private readonly patchB: Tensor;
  private readonly posEmbed: Tensor;
  private readonly blockWeights: BlockWeights[] = [];

  /** `maxBindingBytes`: the storage binding limit to plan for (default: the device's). */
  constructor(
    readonly ctx: GpuContext,
    readonly arch: Sam2Arch,
    sd: StateDict,
    maxBindingBytes = ctx.device.limits.maxStorageBufferBindingSize,
  ) {
    this.blocks = hieraBlocks(arch, maxBindingBytes);
    this.buffers = new BufferSet(ctx, "hiera", hieraBufferSizes(arch, maxBindingBytes));
    const p = "image_encoder.trunk.";
    const host = (name: string) => {
      const t = sd.get(p + name);
      if (!t) throw new Error(`Hiera: checkpoint has no tensor '${p}${name}'`);
      return t;
    };
    const get = (name: string): Tensor => {
      const t = host(name);
      const gpu = tensorFrom(this.ctx, tensorF32(t), t.shape, name);
      this.weights.push(gpu);
      return gpu;
    };
    const pair = (name: string): [Tensor, Tensor] => [get(`${name}.weight`), get(`${name}.bias`)];
    this.patchW = get("patch_embed.proj.weight");
    this.patchB = get("patch_embed.proj.bias");
    const t = arch.trunk, g0 = arch.imgSize / 4;
    const pos = hieraPosEmbed(
      tensorF32(host("pos_embed")),
      t.posEmbedBkg[0],
      t.posEmbedBkg[1],
      tensorF32(host("pos_embed_window")),
      t.windowSpec[0],
      t.embedDim,
      g0,
      g0,
    );
    this.posEmbed = tensorFrom(ctx, pos, [g0, g0, t.embedDim], "hiera.pos_embed");
    this.weights.push(this.posEmbed);
    for (const plan of this.blocks) {
      const b = `blocks.${plan.index}.`;
      this.blockWeights.push({
        plan,
        norm1: pair(`${b}norm1`),
        qkv: plan.pool ? null : pair(`${b}attn.qkv`),
        qkvSplit: plan.pool
          ? this.splitQkv(host(`${b}attn.qkv.weight`), host(`${b}attn.qkv.bias`))
          : null,
        attnProj: pair(`${b}attn.proj`),
        norm2: pair(`${b}norm2`),
        mlp: this.mlpSlices(`${b}mlp.layers.`, host, plan.mlpChunks),
        proj: plan.dimIn !== plan.dimOut ? pair(`${b}proj`) : null,
      });
    }
  }

  /** mlp.layers.0 [hidden, D] / .1 [D, hidden] in `chunks` slices of the hidden columns. */
  private mlpSlices(
    prefix: string,
    host: (name: string) => HostTensor,
    chunks: number,
  ): MlpSlice[] {
    const w0 = host(`${prefix}0.weight`), b0 = host(`${prefix}0.bias`);
    const w1 = host(`${prefix}1.weight`), b1 = host(`${prefix}1.bias`);
    const [hidden, D] = w0.shape;
    const w0a = tensorF32(w0), b0a = tensorF32(b0), w1a = tensorF32(w1);
    const up = (data: Float32Array, shape: number[], label: string) => {
      const t = tensorFrom(this.ctx, data, shape, label);
      this.weights.push(t);
      return t;
    };
    const slices: MlpSlice[] = [];
    const width = Math.ceil(hidden / chunks);
    for (let c0 = 0; c0 < hidden; c0 += width) {
      const c1 = Math.min(c0 + width, hidden), n = c1 - c0;
      // layers.1 columns c0..c1 of every row: [D, n].
      const cols = new Float32Array(D * n);
      for (let r = 0; r < D; r++) cols.set(w1a.subarray(r * hidden + c0, r * hidden + c1), r * n);
      slices.push({
        w0: up(w0a.slice(c0 * D, c1 * D), [n, D], `${w0.name}[${c0}:${c1}]`),
        b0: up(b0a.slice(c0, c1), [n], `${b0.name}[${c0}:${c1}]`),
        w1: up(cols, [D, n], `${w1.name}[:, ${c0}:${c1}]`),
        b1: c0 === 0 ? up(tensorF32(b1).slice(), [D], b1.name) : null,
      });
    }
    return slices;
  }

  /** qkv.weight [3 * D, dimIn] and bias [3 * D] -> q, k, v weight / bias pairs (row blocks). */
  private splitQkv(weight: HostTensor, bias: HostTensor): [Tensor, Tensor][] {
    const [rows3, dimIn] = weight.shape, D = rows3 / 3;
    const wAll = tensorF32(weight), bAll = tensorF32(bias);
    return [0, 1, 2].map((j) => {
      const wt = tensorFrom(
        this.ctx,
        wAll.slice(j * D * dimIn, (j + 1) * D * dimIn),
        [D, dimIn],
        `${weight.name}[${j}]`,
      );
      const bt = tensorFrom(this.ctx, bAll.slice(j * D, (j + 1) * D), [D], `${bias.name}[${j}]`);
      this.weights.push(wt, bt);
      return [wt, bt];
    });
  }

  /** Bytes of the uploaded weights (pos embed as interpolated). */
  get weightBytes(): number {
    return this.weights.reduce((s, t) => s + 4 * t.size, 0);
  }

  dispose(): void {
    this.ctx.submit();
    for (const t of this.weights) t.destroy();
    this.weights.length = 0;
    this.buffers.release();
  }

  /** The (3, S, S) input buffer, to upload an image tensor into. */
  inputView(): Tensor {
    const S = this.arch.imgSize;
    return this.buffers.view("input", [3, S, S]);
  }

  /**
   * Records the trunk on the (3, S, S) image tensor. `onStageEnd(k, x)` is called with each
   * stage's output [H_k, W_k, C_k] right after it is recorded; x's buffer is reused by the
   * next block, so the callee records a copy of it if it keeps it.
   */
  forward(image: Tensor, onStageEnd: (stage: number, x: Tensor) => void): void {
    const ctx = this.ctx, g0 = this.arch.imgSize / 4, E = this.arch.trunk.embedDim;
    const v = this.buffers;
    const patches = conv2d(ctx, image, "chw", this.patchW, this.patchB, {
      stride: 4,
      padding: 3,
      out: v.view("x2", [g0, g0, E]),
      scratch: v.view("big", [g0 * g0, 147]),
    });
    let x = add(ctx, patches, this.posEmbed, v.view("x", [g0, g0, E]));
    const ends = stageEndsOf(this.arch.trunk.stages);
    for (const w of this.blockWeights) {
      x = this.block(w, x);
      ctx.submit(); // a submit per block keeps command buffers modest
      const stage = ends.indexOf(w.plan.index);
      if (stage >= 0) onStageEnd(stage, x);
    }
  }

  /** One MultiScaleBlock on x (in "x"); the result goes back into "x". */
  private block(w: BlockWeights, x: Tensor): Tensor {
    const ctx = this.ctx, b = w.plan, v = this.buffers;
    const { h, w: wd, ho, wo, dimIn, dimOut, window } = b;
    const xn = layerNorm(ctx, x, ...w.norm1, LN_EPS, v.view("tok", [h, wd, dimIn]));
    // Shortcut: x itself, or the projected (and pooled) norm1 output at a width change.
    let shortcut = x;
    if (w.proj && b.pool) {
      const projected = linear(ctx, xn, ...w.proj, { out: v.view("big", [h, wd, dimOut]) });
      shortcut = maxPool2x2(
        ctx,
        projected,
        { batch: 1, h, w: wd, channels: dimOut },
        v.view("short", [1, ho, wo, dimOut]),
      ).reshape([ho, wo, dimOut]);
    } else if (w.proj) {
      shortcut = linear(ctx, xn, ...w.proj, { out: v.view("short", [h, wd, dimOut]) });
    }
    // [rows, dimIn] attention input: windows of the norm1 output (padding after norm1).
    const attnIn = window > 0
      ? windowPartition(ctx, xn, window, v.view("part", [b.batch, window * window, dimIn]))
      : xn.reshape([1, h * wd, dimIn]);
    const rows = b.batch * b.nk;
    const side = window > 0 ? window : h, sideW = window > 0 ? window : wd;
    let q: HeadsView, k: HeadsView, val: HeadsView;
    if (w.qkvSplit) {
      // A q-pool block runs on the un-pooled grid at the doubled width, where one fused qkv
      // [rows, 3 * dimOut] would be the largest activation of all (151 MB for Hiera-T at
      // 1024, over a 128 MB storage binding limit): q, k and v are three products instead.
      const [wq, wk, wv] = w.qkvSplit;
      const qFull = linear(ctx, attnIn, ...wq, { out: v.view("big", [rows, dimOut]) });
      k = {
        tensor: linear(ctx, attnIn, ...wk, { out: v.view("k", [rows, dimOut]) }),
        offset: 0,
        rowStride: dimOut,
      };
      val = {
        tensor: linear(ctx, attnIn, ...wv, { out: v.view("v", [rows, dimOut]) }),
        offset: 0,
        rowStride: dimOut,
      };
      // Queries pooled 2x2 inside each window (over the grid when global).
      const pooled = maxPool2x2(
        ctx,
        qFull,
        { batch: b.batch, h: side, w: sideW, channels: dimOut },
        v.view("q", [b.batch, b.nq, dimOut]),
      );
      q = { tensor: pooled, offset: 0, rowStride: dimOut };
    } else {
      const qkv = linear(ctx, attnIn, ...w.qkv!, { out: v.view("big", [rows, 3 * dimOut]) });
      // (b, n, h, d) of q / k / v inside the fused rows.
      [q, k, val] = [0, 1, 2].map((j) => ({
        tensor: qkv,
        offset: j * dimOut,
        rowStride: 3 * dimOut,
      }));
    }
    const dims = { batch: b.batch, heads: b.heads, headDim: dimOut / b.heads, nq: b.nq, nk: b.nk };
    const attn = attention(ctx, q, k, val, dims, {
      out: v.view("attn", [b.batch, b.nq, dimOut]),
    });
    // Back to the [ho, wo, dimOut] grid, dropping the padding (pooled windows: side / 2).
    const tokens = window > 0
      ? windowUnpartition(
        ctx,
        attn,
        b.pool ? window / 2 : window,
        ho,
        wo,
        v.view("tok", [ho, wo, dimOut]),
      )
      : attn.reshape([ho, wo, dimOut]);
    const x2 = linear(ctx, tokens, ...w.attnProj, {
      residual: shortcut,
      out: v.view("x2", [ho, wo, dimOut]),
    });
    const xn2 = layerNorm(ctx, x2, ...w.norm2, LN_EPS, v.view("tok", [ho, wo, dimOut]));
    // x2 + mlp(xn2), the hidden layer in slices when it would not fit one binding: each
    // slice's product adds onto the previous sum (bias once), alternating two buffers.
    let acc = x2;
    w.mlp.forEach((m, i) => {
      const hidden = linear(ctx, xn2, m.w0, m.b0, {
        activation: "gelu",
        out: v.view("big", [ho * wo, m.w0.shape[0]]),
      });
      const into = i % 2 === 0 ? v.view("x", [ho, wo, dimOut]) : v.view("attn", [ho, wo, dimOut]);
      acc = linear(ctx, hidden, m.w1, m.b1, { residual: acc, out: into }).reshape([ho, wo, dimOut]);
    });
    if (w.mlp.length % 2 === 0) {
      const x = v.view("x", [ho, wo, dimOut]);
      ctx.copy(acc.buffer, 0, x.buffer, 0, acc.size * 4);
      return x;
    }
    return acc;
  }
}
