/**
 * SAM 2's MemoryAttention (`modeling/memory_attention.py`): the current frame's features
 * attend to themselves and to the memories of earlier frames (spatial memories and object
 * pointer tokens), in a stack of layers with rotary position encoding (RoPEAttention).
 *
 *   x = curr + 0.1 * curr_pos                                   (pos_enc_at_input)
 *   per layer (pre-norm):
 *     t = norm1(x);  x += self_attn(q = t, k = t, v = t)         RoPE on q and k
 *     t = norm2(x);  x += cross_attn(q = t, k = memory + memory_pos, v = memory)
 *                    RoPE on q and on every key but the last num_obj_ptr_tokens, the grid
 *                    repeated once per memory frame (rope_k_repeat)
 *     t = norm3(x);  x += linear2(relu(linear1(t)))
 *   out = norm(x)
 *
 * Sequences are token-major [tokens, C], batch 1 (the official video predictor runs one
 * object per call). Each RoPEAttention is q/k/v/out projections (k, v from kv_in_dim for the
 * cross-attention) around softmax(q k^T / sqrt(d)) v; dropout is off in eval.
 */
import type { GpuContext } from "../gpu/context.ts";
import { type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { add } from "../kernels/add.ts";
import { attention, MAX_HEAD_DIM } from "../kernels/attention.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { mul } from "../kernels/mul.ts";
import { applyAxialRope, createRopeTable, type RopeTable } from "../kernels/rope_axial.ts";
import { tensorF32 } from "../weights/load.ts";
import type { StateDict } from "../weights/types.ts";
import type { Sam2MemoryArch } from "./memory_arch.ts";
import { wideAttention } from "./wide_attention.ts";

/** nn.LayerNorm's default eps (the memory attention's norms). */
const LN_EPS = 1e-5;

interface Proj {
  w: Tensor;
  b: Tensor;
}

interface RopeAttentionWeights {
  q: Proj;
  k: Proj;
  v: Proj;
  out: Proj;
  heads: number;
}

interface LayerWeights {
  selfAttn: RopeAttentionWeights;
  crossAttn: RopeAttentionWeights;
  linear1: Proj;
  linear2: Proj;
  norm1: Proj;
  norm2: Proj;
  norm3: Proj;
}

export interface MemoryAttentionOptions {
  /** Use the GEMM attention path even for head dims the attention kernel takes (tests). */
  forceWide?: boolean;
  /** Score block bound of the GEMM path (wideAttention's maxBlockBytes). */
  maxBlockBytes?: number;
}

export class MemoryAttention {
  private readonly weights: Tensor[] = [];
  private readonly layers: LayerWeights[] = [];
  private readonly norm: Proj;
  private readonly ropeTables = new Map<number, RopeTable>();

  constructor(
    private readonly ctx: GpuContext,
    sd: StateDict,
    readonly arch: Sam2MemoryArch,
    private readonly opts: MemoryAttentionOptions = {},
  ) {
    const a = arch.memoryAttention;
    const get = (name: string): Tensor => {
      const h = sd.get(name);
      if (!h) throw new Error(`MemoryAttention: checkpoint has no tensor '${name}'`);
      const t = tensorFrom(ctx, tensorF32(h), h.shape, name);
      this.weights.push(t);
      return t;
    };
    const proj = (name: string): Proj => ({ w: get(`${name}.weight`), b: get(`${name}.bias`) });
    const ropeAttn = (name: string, heads: number): RopeAttentionWeights => {
      const r = {
        q: proj(`${name}.q_proj`),
        k: proj(`${name}.k_proj`),
        v: proj(`${name}.v_proj`),
        out: proj(`${name}.out_proj`),
        heads,
      };
      const internal = r.q.w.shape[0];
      if (internal % heads !== 0 || (internal / heads) % 4 !== 0) {
        throw new Error(
          `MemoryAttention: ${name} width ${internal} over ${heads} heads is not a multiple of 4 per head (RoPE)`,
        );
      }
      return r;
    };
    for (let i = 0; i < a.numLayers; i++) {
      const p = `memory_attention.layers.${i}.`;
      this.layers.push({
        selfAttn: ropeAttn(`${p}self_attn`, a.selfAttnHeads),
        crossAttn: ropeAttn(`${p}cross_attn_image`, a.crossAttnHeads),
        linear1: proj(`${p}linear1`),
        linear2: proj(`${p}linear2`),
        norm1: proj(`${p}norm1`),
        norm2: proj(`${p}norm2`),
        norm3: proj(`${p}norm3`),
      });
    }
    this.norm = proj("memory_attention.norm");
  }

  /** RoPE table of a square grid of `tokens` positions (RoPEAttention takes w = h = sqrt). */
  private rope(tokens: number, headDim: number): RopeTable {
    const key = tokens * 4096 + headDim;
    let t = this.ropeTables.get(key);
    if (!t) {
      const side = Math.round(Math.sqrt(tokens));
      if (side * side !== tokens) {
        throw new Error(`MemoryAttention: ${tokens} query tokens are not a square grid`);
      }
      t = createRopeTable(this.ctx, headDim, side, side, this.arch.memoryAttention.ropeTheta);
      this.weights.push(t.tensor);
      this.ropeTables.set(key, t);
    }
    return t;
  }

  /**
   * RoPEAttention.forward: q from `qIn` [nq, C], k from `kIn` and v from `vIn` [nk, Ckv];
   * keys past nk - numKExcludeRope are not rotated. Returns out_proj(attn) + residual.
   */
  private ropeAttention(
    w: RopeAttentionWeights,
    qIn: Tensor,
    kIn: Tensor,
    vIn: Tensor,
    numKExcludeRope: number,
    residual: Tensor,
    temps: Tensor[],
  ): Tensor {
    const ctx = this.ctx;
    const temp = (t: Tensor) => (temps.push(t), t);
    const internal = w.q.w.shape[0];
    const headDim = internal / w.heads;
    const nq = qIn.size / qIn.shape[qIn.shape.length - 1];
    const nk = kIn.size / kIn.shape[kIn.shape.length - 1];
    const table = this.rope(nq, headDim);
    const q = temp(linear(ctx, qIn, w.q.w, w.q.b)); // [nq, internal]
    const k = temp(linear(ctx, kIn, w.k.w, w.k.b)); // [nk, internal]
    const v = temp(linear(ctx, vIn, w.v.w, w.v.b)); // [nk, internal]
    const qr = temp(applyAxialRope(ctx, q, table, { heads: w.heads }));
    const kr = temp(
      applyAxialRope(ctx, k, table, { heads: w.heads, ropeRows: nk - numKExcludeRope }),
    );
    const view = (t: Tensor) => ({ tensor: t, offset: 0, rowStride: internal });
    let o: Tensor;
    if (headDim > MAX_HEAD_DIM || this.opts.forceWide) {
      // SAM 2.1's 1 head of 256: GEMMs over query blocks.
      if (w.heads !== 1) {
        throw new Error(`MemoryAttention: ${w.heads} heads of ${headDim} are not supported`);
      }
      o = temp(wideAttention(ctx, qr, kr, v, { maxBlockBytes: this.opts.maxBlockBytes }));
    } else {
      o = temp(attention(ctx, view(qr), view(kr), view(v), {
        batch: 1,
        heads: w.heads,
        headDim,
        nq,
        nk,
      })); // [1, nq, internal], heads interleaved as in q
    }
    return linear(ctx, o.reshape([nq, internal]), w.out.w, w.out.b, { residual });
  }

  /**
   * curr, currPos: [N, C] (N = s * s image tokens); memory, memoryPos: [M, kvInDim], the
   * last numObjPtrTokens rows being object-pointer tokens. Records the work; returns the
   * [N, C] memory-conditioned features (the caller owns it).
   */
  forward(
    curr: Tensor,
    currPos: Tensor,
    memory: Tensor,
    memoryPos: Tensor,
    numObjPtrTokens: number,
  ): Tensor {
    const a = this.arch.memoryAttention;
    const ctx = this.ctx;
    const C = a.dModel;
    const N = curr.size / C;
    if (curr.shape[curr.shape.length - 1] !== C || currPos.size !== curr.size) {
      throw new Error(
        `MemoryAttention: curr [${curr.shape}] and currPos [${currPos.shape}] must be [N, ${C}]`,
      );
    }
    const M = memory.size / a.kvInDim;
    if (memory.shape[memory.shape.length - 1] !== a.kvInDim || memoryPos.size !== memory.size) {
      throw new Error(
        `MemoryAttention: memory [${memory.shape}] and memoryPos [${memoryPos.shape}] must be [M, ${a.kvInDim}]`,
      );
    }
    if (!Number.isInteger(numObjPtrTokens) || numObjPtrTokens < 0 || numObjPtrTokens > M) {
      throw new Error(`MemoryAttention: numObjPtrTokens ${numObjPtrTokens} not in [0, ${M}]`);
    }
    if ((M - numObjPtrTokens) % N !== 0) {
      throw new Error(
        `MemoryAttention: ${
          M - numObjPtrTokens
        } spatial memory tokens are not whole frames of ${N}`,
      );
    }
    const temps: Tensor[] = [];
    const temp = (t: Tensor) => (temps.push(t), t);
    const x0 = curr.reshape([N, C]);
    let x = a.posEncAtInput ? add(ctx, x0, temp(mul(ctx, currPos.reshape([N, C]), 0.1))) : x0;
    const mem = memory.reshape([M, a.kvInDim]);
    // memory + pos is the same for every layer's keys.
    const keys = a.posEncAtCrossAttnKeys
      ? temp(add(ctx, mem, memoryPos.reshape([M, a.kvInDim])))
      : mem;
    for (const l of this.layers) {
      if (x !== x0) temps.push(x);
      const t1 = temp(layerNorm(ctx, x, l.norm1.w, l.norm1.b, LN_EPS));
      x = this.ropeAttention(l.selfAttn, t1, t1, t1, 0, x, temps);
      temps.push(x);
      const t2 = temp(layerNorm(ctx, x, l.norm2.w, l.norm2.b, LN_EPS));
      x = this.ropeAttention(l.crossAttn, t2, keys, mem, numObjPtrTokens, x, temps);
      temps.push(x);
      const t3 = temp(layerNorm(ctx, x, l.norm3.w, l.norm3.b, LN_EPS));
      const h = temp(linear(ctx, t3, l.linear1.w, l.linear1.b, { activation: "relu" }));
      x = linear(ctx, h, l.linear2.w, l.linear2.b, { residual: x });
    }
    if (x !== x0) temps.push(x);
    const out = layerNorm(ctx, x, this.norm.w, this.norm.b, LN_EPS);
    ctx.submit();
    for (const t of temps) t.destroy();
    return out.reshape([N, C]);
  }

  dispose(): void {
    this.ctx.submit();
    for (const t of this.weights) t.destroy();
    this.weights.length = 0;
  }
}
