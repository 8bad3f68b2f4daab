/**
 * Float64 references of SAM 2's video modules (memory encoder, memory attention), written
 * from the official PyTorch code's math in its own layouts (NCHW maps, [tokens, C]
 * sequences), for the GPU tests. Weights come from a real checkpoint's state dict.
 */
import { gelu64 } from "../kernels/core_ref.ts";
import { tensorF32 } from "../../src/weights/load.ts";
import type { StateDict } from "../../src/weights/types.ts";

export function weight(sd: StateDict, name: string): Float32Array {
  const t = sd.get(name);
  if (!t) throw new Error(`reference: no tensor ${name}`);
  return tensorF32(t);
}

/** A (C, H, W) float64 map. */
export interface Map64 {
  c: number;
  h: number;
  w: number;
  data: Float64Array;
}

/** nn.Conv2d (groups 1 or C), zero padding. */
export function conv2d64(
  x: Map64,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  cout: number,
  k: number,
  stride: number,
  pad: number,
  depthwise = false,
): Map64 {
  const ho = Math.floor((x.h + 2 * pad - k) / stride) + 1;
  const wo = Math.floor((x.w + 2 * pad - k) / stride) + 1;
  const out = new Float64Array(cout * ho * wo);
  const cinPer = depthwise ? 1 : x.c;
  for (let co = 0; co < cout; co++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let s = b[co];
        for (let cj = 0; cj < cinPer; cj++) {
          const ci = depthwise ? co : cj;
          for (let ky = 0; ky < k; ky++) {
            const iy = oy * stride - pad + ky;
            if (iy < 0 || iy >= x.h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = ox * stride - pad + kx;
              if (ix < 0 || ix >= x.w) continue;
              s += w[((co * cinPer + cj) * k + ky) * k + kx] * x.data[(ci * x.h + iy) * x.w + ix];
            }
          }
        }
        out[(co * ho + oy) * wo + ox] = s;
      }
    }
  }
  return { c: cout, h: ho, w: wo, data: out };
}

/** LayerNorm2d: over channels at each pixel (biased variance). */
export function layerNorm2d64(
  x: Map64,
  g: ArrayLike<number>,
  b: ArrayLike<number>,
  eps: number,
): Map64 {
  const hw = x.h * x.w;
  const out = new Float64Array(x.data.length);
  for (let p = 0; p < hw; p++) {
    let mean = 0;
    for (let c = 0; c < x.c; c++) mean += x.data[c * hw + p];
    mean /= x.c;
    let v = 0;
    for (let c = 0; c < x.c; c++) v += (x.data[c * hw + p] - mean) ** 2;
    const sd = Math.sqrt(v / x.c + eps);
    for (let c = 0; c < x.c; c++) {
      out[c * hw + p] = ((x.data[c * hw + p] - mean) / sd) * g[c] + b[c];
    }
  }
  return { ...x, data: out };
}

/** nn.LayerNorm over the last dim of [n, C] rows. */
export function layerNorm64(
  x: Float64Array,
  C: number,
  g: ArrayLike<number>,
  b: ArrayLike<number>,
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c];
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - mean) ** 2;
    const sd = Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = ((x[r * C + c] - mean) / sd) * g[c] + b[c];
  }
  return out;
}

/** nn.Linear on [n, K] rows: weight [N, K]. */
export function linear64(
  x: ArrayLike<number>,
  K: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  N: number,
): Float64Array {
  const n = x.length / K;
  const out = new Float64Array(n * N);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < N; o++) {
      let s = b[o];
      for (let k = 0; k < K; k++) s += x[r * K + k] * w[o * K + k];
      out[r * N + o] = s;
    }
  }
  return out;
}

const chwToRows = (x: Map64): Float64Array => {
  const hw = x.h * x.w, out = new Float64Array(x.data.length);
  for (let c = 0; c < x.c; c++) for (let p = 0; p < hw; p++) out[p * x.c + c] = x.data[c * hw + p];
  return out;
};
const rowsToChw = (r: Float64Array, c: number, h: number, w: number): Map64 => {
  const hw = h * w, out = new Float64Array(r.length);
  for (let ch = 0; ch < c; ch++) for (let p = 0; p < hw; p++) out[ch * hw + p] = r[p * c + ch];
  return { c, h, w, data: out };
};

/**
 * MemoryEncoder.forward(pix_feat, masks, skip_mask_sigmoid=True) after _encode_new_memory's
 * sigmoid * scale + bias: pixFeat (C, s, s), maskLogits (S, S). Returns vision_features
 * (outDim, s, s).
 */
export function memoryEncoder64(
  sd: StateDict,
  pixFeat: Map64,
  maskLogits: Float32Array,
  S: number,
  scale: number,
  bias: number,
  binarize = false,
): Map64 {
  const me = "memory_encoder.";
  const shape = (n: string) => sd.get(me + n)!.shape;
  const W = (n: string) => weight(sd, me + n);
  let m: Map64 = {
    c: 1,
    h: S,
    w: S,
    data: Float64Array.from(
      maskLogits,
      (v) => (binarize ? (v > 0 ? 1 : 0) : 1 / (1 + Math.exp(-v))) * scale + bias,
    ),
  };
  const ds = "mask_downsampler.encoder.";
  let i = 0;
  while (sd.has(`${me}${ds}${3 * (i + 1)}.weight`)) {
    const [cout, , k] = shape(`${ds}${3 * i}.weight`);
    m = conv2d64(m, W(`${ds}${3 * i}.weight`), W(`${ds}${3 * i}.bias`), cout, k, 2, (k - 1) / 2);
    m = layerNorm2d64(m, W(`${ds}${3 * i + 1}.weight`), W(`${ds}${3 * i + 1}.bias`), 1e-6);
    m = { ...m, data: m.data.map(gelu64) };
    i++;
  }
  const [cd] = shape(`${ds}${3 * i}.weight`);
  m = conv2d64(m, W(`${ds}${3 * i}.weight`), W(`${ds}${3 * i}.bias`), cd, 1, 1, 0);
  const C = pixFeat.c;
  let x = conv2d64(pixFeat, W("pix_feat_proj.weight"), W("pix_feat_proj.bias"), C, 1, 1, 0);
  x = { ...x, data: x.data.map((v, j) => v + m.data[j]) };
  for (let l = 0; sd.has(`${me}fuser.layers.${l}.dwconv.weight`); l++) {
    const p = `fuser.layers.${l}.`;
    const [, , k] = shape(`${p}dwconv.weight`);
    let y = conv2d64(x, W(`${p}dwconv.weight`), W(`${p}dwconv.bias`), C, k, 1, (k - 1) / 2, true);
    y = layerNorm2d64(y, W(`${p}norm.weight`), W(`${p}norm.bias`), 1e-6);
    const [hid] = shape(`${p}pwconv1.weight`);
    let r = linear64(chwToRows(y), C, W(`${p}pwconv1.weight`), W(`${p}pwconv1.bias`), hid);
    r = r.map(gelu64);
    r = linear64(r, hid, W(`${p}pwconv2.weight`), W(`${p}pwconv2.bias`), C);
    const gamma = W(`${p}gamma`);
    r = r.map((v, j) => v * gamma[j % C]);
    const add = rowsToChw(r, C, x.h, x.w);
    x = { ...x, data: x.data.map((v, j) => v + add.data[j]) };
  }
  if (sd.has(`${me}out_proj.weight`)) {
    const [co] = shape("out_proj.weight");
    x = conv2d64(x, W("out_proj.weight"), W("out_proj.bias"), co, 1, 1, 0);
  }
  return x;
}

/** apply_rotary_enc on [rows, heads * D] (float32 angles, as torch computes freqs_cis). */
export function rope64(
  x: Float64Array,
  heads: number,
  D: number,
  side: number,
  ropeRows: number,
): Float64Array {
  const f = Math.fround;
  const out = Float64Array.from(x);
  const quarter = D / 4;
  const freq = (i: number) => f(1 / f(10000 ** f((4 * i) / D)));
  for (let r = 0; r < ropeRows; r++) {
    const p = r % (side * side);
    const px = p % side, py = Math.floor(p / side);
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < D / 2; j++) {
        const angle = j < quarter ? f(px * freq(j)) : f(py * freq(j - quarter));
        const o = r * heads * D + h * D + 2 * j;
        const a = x[o], b = x[o + 1];
        out[o] = a * Math.cos(angle) - b * Math.sin(angle);
        out[o + 1] = a * Math.sin(angle) + b * Math.cos(angle);
      }
    }
  }
  return out;
}

/** RoPEAttention.forward with batch 1: q [nq, C], k / v [nk, Ckv]; returns out_proj(.). */
function ropeAttention64(
  sd: StateDict,
  name: string,
  heads: number,
  q: Float64Array,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  C: number,
  Ckv: number,
  numKExcludeRope: number,
): Float64Array {
  const [inner] = sd.get(`${name}.q_proj.weight`)!.shape;
  const W = (n: string) => weight(sd, `${name}.${n}`);
  const nq = q.length / C, nk = k.length / Ckv;
  const side = Math.round(Math.sqrt(nq));
  const D = inner / heads;
  const Q = rope64(linear64(q, C, W("q_proj.weight"), W("q_proj.bias"), inner), heads, D, side, nq);
  const K = rope64(
    linear64(k, Ckv, W("k_proj.weight"), W("k_proj.bias"), inner),
    heads,
    D,
    side,
    nk - numKExcludeRope,
  );
  const V = linear64(v, Ckv, W("v_proj.weight"), W("v_proj.bias"), inner);
  const o = new Float64Array(nq * inner);
  const s = new Float64Array(nk);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < nq; i++) {
      let max = -Infinity;
      for (let j = 0; j < nk; j++) {
        let d = 0;
        for (let c = 0; c < D; c++) d += Q[i * inner + h * D + c] * K[j * inner + h * D + c];
        s[j] = d / Math.sqrt(D);
        max = Math.max(max, s[j]);
      }
      let sum = 0;
      for (let j = 0; j < nk; j++) sum += s[j] = Math.exp(s[j] - max);
      for (let c = 0; c < D; c++) {
        let acc = 0;
        for (let j = 0; j < nk; j++) acc += s[j] * V[j * inner + h * D + c];
        o[i * inner + h * D + c] = acc / sum;
      }
    }
  }
  return linear64(o, inner, W("out_proj.weight"), W("out_proj.bias"), C);
}

/**
 * MemoryAttention.forward (batch 1, the SAM 2.1 config: pos enc at the input, on the
 * cross-attention keys only, ReLU MLP): curr, currPos [N, C]; memory, memoryPos [M, Ckv].
 */
export function memoryAttention64(
  sd: StateDict,
  heads: number,
  curr: ArrayLike<number>,
  currPos: ArrayLike<number>,
  memory: ArrayLike<number>,
  memoryPos: ArrayLike<number>,
  C: number,
  Ckv: number,
  numObjPtrTokens: number,
): Float64Array {
  const W = (n: string) => weight(sd, `memory_attention.${n}`);
  let x = Float64Array.from(curr, (v, i) => v + Math.fround(0.1 * currPos[i]));
  const keys = Float64Array.from(memory, (v, i) => v + memoryPos[i]);
  const addTo = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i]);
  for (let l = 0; sd.has(`memory_attention.layers.${l}.norm1.weight`); l++) {
    const p = `layers.${l}.`;
    let t = layerNorm64(x, C, W(`${p}norm1.weight`), W(`${p}norm1.bias`), 1e-5);
    x = addTo(x, ropeAttention64(sd, `memory_attention.${p}self_attn`, heads, t, t, t, C, C, 0));
    t = layerNorm64(x, C, W(`${p}norm2.weight`), W(`${p}norm2.bias`), 1e-5);
    x = addTo(
      x,
      ropeAttention64(
        sd,
        `memory_attention.${p}cross_attn_image`,
        heads,
        t,
        keys,
        memory,
        C,
        Ckv,
        numObjPtrTokens,
      ),
    );
    t = layerNorm64(x, C, W(`${p}norm3.weight`), W(`${p}norm3.bias`), 1e-5);
    const [hid] = sd.get(`memory_attention.${p}linear1.weight`)!.shape;
    const h = linear64(t, C, W(`${p}linear1.weight`), W(`${p}linear1.bias`), hid).map((v) =>
      Math.max(v, 0)
    );
    x = addTo(x, linear64(h, hid, W(`${p}linear2.weight`), W(`${p}linear2.bias`), C));
  }
  return layerNorm64(x, C, W("norm.weight"), W("norm.bias"), 1e-5);
}

/** F.interpolate(bilinear, align_corners=False) of one (l, l) plane to (S, S), float64. */
export function upsampleBilinear64(x: ArrayLike<number>, l: number, S: number): Float32Array {
  const axis = (d: number) => {
    const src = Math.max((l / S) * (d + 0.5) - 0.5, 0);
    const i0 = Math.min(Math.floor(src), l - 1);
    const i1 = i0 < l - 1 ? i0 + 1 : i0;
    return [i0, i1, 1 - (src - i0), src - i0];
  };
  const out = new Float32Array(S * S);
  for (let y = 0; y < S; y++) {
    const [y0, y1, ly0, ly1] = axis(y);
    for (let xx = 0; xx < S; xx++) {
      const [x0, x1, lx0, lx1] = axis(xx);
      out[y * S + xx] = ly0 * (lx0 * x[y0 * l + x0] + lx1 * x[y0 * l + x1]) +
        ly1 * (lx0 * x[y1 * l + x0] + lx1 * x[y1 * l + x1]);
    }
  }
  return out;
}
