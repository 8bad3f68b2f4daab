/**
 * TinyViT's components on the GPU against a float64 CPU reference written from the official
 * modules (tiny_vit_sam.py), at shapes no fixture has: a TinyViTBlock with window 4 on a 10x9
 * grid (padded to 12x12), 3 heads of head_dim 6 (scalar paths), a 5x5 local conv and a 2.5x
 * MLP; a one-window block (grid = window, no padding); MBConv; PatchMerging at stride 2 on an
 * odd grid and at stride 1. The reference applies each BatchNorm after its conv (not folded),
 * splits qkv per head as the official view/split does, and builds attention_bias_idxs the
 * official way, so folding, the qkv reorder and the bias gather are all checked here.
 */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import {
  mbconvForward,
  patchMergingForward,
  tinyVitBlockForward,
  TinyVitWeightLoader,
  type ViewFn,
} from "../../src/mobile_sam/tiny_vit.ts";
import type { TinyVitStage } from "../../src/mobile_sam/arch.ts";
import type { StateDict } from "../../src/weights/types.ts";
import { gelu64 } from "../kernels/core_ref.ts";
import { assertClose, randomArray } from "../util/compare.ts";

const ctx = await getContext();
const views: ViewFn = (name, shape) => emptyTensor(ctx, shape, name);

/** Random float32 tensors under official names, kept as arrays for the reference too. */
class Weights {
  readonly sd: StateDict = new Map();
  private seed = 1;
  get(name: string): Float32Array {
    const t = this.sd.get(name)!;
    return new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.length / 4);
  }
  add(name: string, shape: number[], scale: number, offset = 0): void {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomArray(n, this.seed++ * 7919, scale).map((v) => v + offset);
    this.sd.set(name, { name, dtype: "float32", shape, bytes: new Uint8Array(data.buffer) });
  }
  convBn(name: string, cout: number, cinPerGroup: number, k: number): void {
    this.add(`${name}.c.weight`, [cout, cinPerGroup, k, k], 1 / Math.sqrt(cinPerGroup * k * k));
    this.add(`${name}.bn.weight`, [cout], 0.2, 1);
    this.add(`${name}.bn.bias`, [cout], 0.1);
    this.add(`${name}.bn.running_mean`, [cout], 0.1);
    this.add(`${name}.bn.running_var`, [cout], 0.3, 1);
  }
  linear(name: string, out: number, inp: number): void {
    this.add(`${name}.weight`, [out, inp], 1 / Math.sqrt(inp));
    this.add(`${name}.bias`, [out], 0.1);
  }
  norm(name: string, dim: number): void {
    this.add(`${name}.weight`, [dim], 0.2, 1);
    this.add(`${name}.bias`, [dim], 0.05);
  }
}

// ---- float64 reference on [H, W, C] maps (tokens row-major), official semantics ----

type Map3 = { h: number; w: number; c: number; d: Float64Array };

/** Conv2d (no bias, groups) then BatchNorm2d (eval, eps 1e-5), optional GELU. */
function convBnRef(
  x: Map3,
  W: Weights,
  name: string,
  stride: number,
  groups: number,
  act: boolean,
): Map3 {
  const wt = W.get(`${name}.c.weight`);
  const [cout, cinG, k] = W.sd.get(`${name}.c.weight`)!.shape;
  const g = W.get(`${name}.bn.weight`), b = W.get(`${name}.bn.bias`);
  const m = W.get(`${name}.bn.running_mean`), v = W.get(`${name}.bn.running_var`);
  const pad = (k - 1) / 2, coutG = cout / groups;
  const ho = Math.floor((x.h + 2 * pad - k) / stride) + 1,
    wo = Math.floor((x.w + 2 * pad - k) / stride) + 1;
  const out = new Float64Array(ho * wo * cout);
  for (let oy = 0; oy < ho; oy++) {
    for (let ox = 0; ox < wo; ox++) {
      for (let o = 0; o < cout; o++) {
        const grp = Math.floor(o / coutG);
        let s = 0;
        for (let ci = 0; ci < cinG; ci++) {
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
              if (iy < 0 || ix < 0 || iy >= x.h || ix >= x.w) continue;
              s += x.d[(iy * x.w + ix) * x.c + grp * cinG + ci] *
                wt[((o * cinG + ci) * k + ky) * k + kx];
            }
          }
        }
        const y = (s - m[o]) / Math.sqrt(v[o] + 1e-5) * g[o] + b[o];
        out[(oy * wo + ox) * cout + o] = act ? gelu64(y) : y;
      }
    }
  }
  return { h: ho, w: wo, c: cout, d: out };
}

function layerNormRef(x: Float64Array, C: number, g: Float32Array, b: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let mean = 0, vr = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c] / C;
    for (let c = 0; c < C; c++) vr += (x[r * C + c] - mean) ** 2 / C;
    for (let c = 0; c < C; c++) {
      out[r * C + c] = (x[r * C + c] - mean) / Math.sqrt(vr + 1e-5) * g[c] + b[c];
    }
  }
  return out;
}

function linearRef(
  x: Float64Array,
  K: number,
  w: Float32Array,
  b: Float32Array,
  act = false,
): Float64Array {
  const N = b.length, M = x.length / K;
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let n = 0; n < N; n++) {
      let s = b[n];
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[n * K + k];
      out[i * N + n] = act ? gelu64(s) : s;
    }
  }
  return out;
}

/** The official Attention on one window's tokens [n, C] (norm inside, per-head qkv split). */
function attentionRef(
  t: Float64Array,
  n: number,
  C: number,
  heads: number,
  win: number,
  W: Weights,
  p: string,
) {
  const xn = layerNormRef(t, C, W.get(`${p}.norm.weight`), W.get(`${p}.norm.bias`));
  const qkv = linearRef(xn, C, W.get(`${p}.qkv.weight`), W.get(`${p}.qkv.bias`));
  const d = C / heads;
  const biases = W.get(`${p}.attention_biases`);
  // attention_bias_idxs, built as the official __init__ does (offsets by first appearance).
  const pts: [number, number][] = [];
  for (let r = 0; r < win; r++) for (let c = 0; c < win; c++) pts.push([r, c]);
  const seen = new Map<string, number>();
  const idx = pts.flatMap((a) =>
    pts.map((b) => {
      const key = `${Math.abs(a[0] - b[0])},${Math.abs(a[1] - b[1])}`;
      if (!seen.has(key)) seen.set(key, seen.size);
      return seen.get(key)!;
    })
  );
  const out = new Float64Array(n * C);
  for (let h = 0; h < heads; h++) {
    // qkv.view(B, N, heads, -1).split([d, d, d], dim=3)
    const at = (i: number, part: number, e: number) => qkv[i * 3 * C + h * 3 * d + part * d + e];
    for (let i = 0; i < n; i++) {
      const s = new Float64Array(n);
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += at(i, 0, e) * at(j, 1, e);
        s[j] = dot * d ** -0.5 + biases[h * win * win + idx[i * n + j]];
        max = Math.max(max, s[j]);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += s[j] = Math.exp(s[j] - max);
      for (let e = 0; e < d; e++) {
        let o = 0;
        for (let j = 0; j < n; j++) o += s[j] / sum * at(j, 2, e);
        out[i * C + h * d + e] = o;
      }
    }
  }
  return linearRef(out, C, W.get(`${p}.proj.weight`), W.get(`${p}.proj.bias`));
}

/** TinyViTBlock.forward on x [H, W, C]. */
function blockRef(x: Map3, W: Weights, p: string, heads: number, win: number): Map3 {
  const { h: H, w: Wd, c: C } = x;
  const pH = Math.ceil(H / win) * win, pW = Math.ceil(Wd / win) * win;
  const attn = new Float64Array(H * Wd * C);
  for (let wy = 0; wy < pH / win; wy++) {
    for (let wx = 0; wx < pW / win; wx++) {
      // The window of the zero-padded raw tokens.
      const t = new Float64Array(win * win * C);
      for (let i = 0; i < win * win; i++) {
        const y = wy * win + Math.floor(i / win), xx = wx * win + (i % win);
        if (y < H && xx < Wd) t.set(x.d.subarray((y * Wd + xx) * C, (y * Wd + xx + 1) * C), i * C);
      }
      const o = attentionRef(t, win * win, C, heads, win, W, `${p}.attn`);
      for (let i = 0; i < win * win; i++) {
        const y = wy * win + Math.floor(i / win), xx = wx * win + (i % win);
        if (y < H && xx < Wd) attn.set(o.subarray(i * C, (i + 1) * C), (y * Wd + xx) * C);
      }
    }
  }
  const x1 = x.d.map((v, i) => v + attn[i]);
  const x2 = convBnRef({ h: H, w: Wd, c: C, d: x1 }, W, `${p}.local_conv`, 1, C, false);
  const xn = layerNormRef(x2.d, C, W.get(`${p}.mlp.norm.weight`), W.get(`${p}.mlp.norm.bias`));
  const hid = linearRef(xn, C, W.get(`${p}.mlp.fc1.weight`), W.get(`${p}.mlp.fc1.bias`), true);
  const mlp = linearRef(
    hid,
    hid.length / (H * Wd),
    W.get(`${p}.mlp.fc2.weight`),
    W.get(`${p}.mlp.fc2.bias`),
  );
  return { h: H, w: Wd, c: C, d: x2.d.map((v, i) => v + mlp[i]) };
}

function stage(
  dim: number,
  heads: number,
  window: number,
  mlpDim: number,
  localConv: number,
): TinyVitStage {
  return {
    dim,
    depth: 1,
    grid: 0,
    mbconvHidden: 0,
    heads,
    window,
    mlpDim,
    localConv,
    downsample: null,
  };
}

function gpuVsRef(label: string, got: Float32Array, ref: Float64Array, shape: number[]) {
  assertClose(got, ref, { atol: 2e-5, rtol: 2e-5, shape, label });
}

Deno.test("TinyViTBlock at unseen shapes (padded windows, 3 heads of 6, 5x5 local conv) matches the reference", async () => {
  for (
    const [H, Wd, C, heads, win, mlp, k] of [[10, 9, 18, 3, 4, 45, 5], [5, 5, 16, 2, 5, 32, 3]]
  ) {
    const W = new Weights();
    const p = "layers.1.blocks.0";
    W.add(`image_encoder.${p}.attn.attention_biases`, [heads, win * win], 1);
    W.norm(`image_encoder.${p}.attn.norm`, C);
    W.linear(`image_encoder.${p}.attn.qkv`, 3 * C, C);
    W.linear(`image_encoder.${p}.attn.proj`, C, C);
    W.norm(`image_encoder.${p}.mlp.norm`, C);
    W.linear(`image_encoder.${p}.mlp.fc1`, mlp, C);
    W.linear(`image_encoder.${p}.mlp.fc2`, C, mlp);
    W.convBn(`image_encoder.${p}.local_conv`, C, 1, k);
    const x = randomArray(H * Wd * C, H * 13 + C, 1.5);
    const load = new TinyVitWeightLoader(ctx, W.sd);
    const weights = load.block(p, stage(C, heads, win, mlp, k));
    const y = tinyVitBlockForward(
      ctx,
      stage(C, heads, win, mlp, k),
      weights,
      tensorFrom(ctx, x, [H, Wd, C]),
      views,
    );
    const ref = blockRef(
      { h: H, w: Wd, c: C, d: Float64Array.from(x) },
      withPrefix(W),
      p,
      heads,
      win,
    );
    gpuVsRef(`block ${H}x${Wd}x${C} win ${win} heads ${heads}`, await y.read(), ref.d, [
      H,
      Wd,
      C,
    ]);
  }
});

/** The same arrays looked up without the "image_encoder." prefix. */
function withPrefix(W: Weights): Weights {
  const out = new Weights();
  for (const [name, t] of W.sd) out.sd.set(name.replace(/^image_encoder\./, ""), t);
  return out;
}

Deno.test("MBConv and PatchMerging (stride 2 on an odd grid, stride 1) match the reference", async () => {
  const H = 9, Wd = 7, C = 6, hidden = 24, out = 10;
  const W = new Weights();
  W.convBn("image_encoder.m.conv1", hidden, C, 1);
  W.convBn("image_encoder.m.conv2", hidden, 1, 3);
  W.convBn("image_encoder.m.conv3", C, hidden, 1);
  W.convBn("image_encoder.d.conv1", out, C, 1);
  W.convBn("image_encoder.d.conv2", out, 1, 3);
  W.convBn("image_encoder.d.conv3", out, out, 1);
  const R = withPrefix(W);
  const x = randomArray(H * Wd * C, 77, 1.5);
  const xm: Map3 = { h: H, w: Wd, c: C, d: Float64Array.from(x) };
  const load = new TinyVitWeightLoader(ctx, W.sd);

  // MBConv: gelu(x + bn3(conv3(gelu(bn2(dw(gelu(bn1(conv1(x)))))))))
  const a = convBnRef(convBnRef(xm, R, "m.conv1", 1, 1, true), R, "m.conv2", 1, hidden, true);
  const b = convBnRef(a, R, "m.conv3", 1, 1, false);
  const mbRef = b.d.map((v, i) => gelu64(v + xm.d[i]));
  const mb = mbconvForward(ctx, load.mbconv("m"), tensorFrom(ctx, x, [H, Wd, C]), views);
  await gpuVsRef("MBConv 9x7x6", await mb.read(), mbRef, [H, Wd, C]);

  for (const stride of [2, 1]) {
    const s = { ...stage(C, 0, 0, 0, 0), downsample: { outDim: out, stride, outGrid: 0 } };
    const d1 = convBnRef(xm, R, "d.conv1", 1, 1, true);
    const d2 = convBnRef(d1, R, "d.conv2", stride, out, true);
    const ref = convBnRef(d2, R, "d.conv3", 1, 1, false);
    const got = patchMergingForward(
      ctx,
      s,
      load.mbconv("d"),
      tensorFrom(ctx, x, [H, Wd, C]),
      views,
    );
    gpuVsRef(`PatchMerging stride ${stride}`, await got.read(), ref.d, [ref.h, ref.w, out]);
  }
});
