/**
 * A SAM 2 encoder of a shape no fixture has, against a float64 CPU reference written
 * straight from the official hieradet.py / image_encoder.py loops (pad, view, permute; no
 * shared code with the GPU path beyond the arch): 96 px input, Hiera 8 wide with 2 heads at
 * stage 1 (head dim 4), stages [1, 2, 2, 1], window_spec [6, 4, 4, 2] (stage 3 pads 6 -> 8 and
 * its pooled windows 3 -> 4), a global block that q-pools over the whole grid (block 3), a
 * non-square 5x7 background pos embed, d_model 32. Random weights.
 *
 * Tolerance: float32 GPU against float64, |d| <= 1e-4 + 1e-4 * |ref| (values are O(1); the
 * float32 rounding of 6 blocks stays near 1e-6, a wrong index moves values by O(0.1)).
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import type { Tensor } from "../../src/gpu/tensor.ts";
import { cloneTensor } from "../../src/encoder/image_encoder.ts";
import { inferSam2Arch, type Sam2Arch } from "../../src/sam2/arch.ts";
import { disposeSam2Features, Sam2ImageEncoder } from "../../src/sam2/image_encoder.ts";
import { expectedSam2EncoderShapes } from "../../src/sam2/load.ts";
import type { StateDict } from "../../src/weights/types.ts";
import { assertClose, randomArray } from "../util/compare.ts";
import { hwcToChw } from "./fixture_files.ts";

type W = Map<string, Float64Array>;

/** [H, W, C] float64 grid. */
interface Grid {
  h: number;
  w: number;
  c: number;
  d: Float64Array;
}

function layerNorm(x: Grid, g: Float64Array, b: Float64Array): Grid {
  const out = new Float64Array(x.d.length);
  for (let p = 0; p < x.h * x.w; p++) {
    const row = x.d.subarray(p * x.c, (p + 1) * x.c);
    const mean = row.reduce((a, v) => a + v, 0) / x.c;
    const v = row.reduce((a, t) => a + (t - mean) ** 2, 0) / x.c;
    for (let k = 0; k < x.c; k++) {
      out[p * x.c + k] = (row[k] - mean) / Math.sqrt(v + 1e-6) * g[k] + b[k];
    }
  }
  return { ...x, d: out };
}

/** Rows [n, inDim] @ W^T + b, W [outDim, inDim]. */
function linear(x: Float64Array, n: number, w: Float64Array, b: Float64Array, outDim: number) {
  const inDim = w.length / outDim;
  const out = new Float64Array(n * outDim);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
      out[r * outDim + o] = s;
    }
  }
  return out;
}

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse; a series / continued fraction in float64.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t, term = t;
    for (let k = 1; k < 100; k++) {
      term *= -t * t / k;
      sum += term / (2 * k + 1);
    }
    return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
  }
  // erfc continued fraction for large |x|.
  let f = 0;
  for (let k = 60; k >= 1; k--) f = (k / 2) / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
}
const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));

/** Zero-pad [H, W, C] to multiples of win and cut into [nWin][win*win*C] windows. */
function partition(x: Grid, win: number): { wins: Float64Array[]; hp: number; wp: number } {
  const hp = Math.ceil(x.h / win) * win, wp = Math.ceil(x.w / win) * win;
  const wins: Float64Array[] = [];
  for (let wy = 0; wy < hp / win; wy++) {
    for (let wx = 0; wx < wp / win; wx++) {
      const w = new Float64Array(win * win * x.c);
      for (let iy = 0; iy < win; iy++) {
        for (let ix = 0; ix < win; ix++) {
          const y = wy * win + iy, xx = wx * win + ix;
          if (y < x.h && xx < x.w) {
            for (let k = 0; k < x.c; k++) {
              w[(iy * win + ix) * x.c + k] = x.d[(y * x.w + xx) * x.c + k];
            }
          }
        }
      }
      wins.push(w);
    }
  }
  return { wins, hp, wp };
}

function maxPool(x: Float64Array, side: number, sideW: number, c: number): Float64Array {
  const ho = Math.floor(side / 2), wo = Math.floor(sideW / 2);
  const out = new Float64Array(ho * wo * c);
  for (let y = 0; y < ho; y++) {
    for (let xx = 0; xx < wo; xx++) {
      for (let k = 0; k < c; k++) {
        let m = -Infinity;
        for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
          m = Math.max(m, x[((2 * y + dy) * sideW + 2 * xx + dx) * c + k]);
        }
        out[(y * wo + xx) * c + k] = m;
      }
    }
  }
  return out;
}

/** softmax(q k^T / sqrt(d)) v per head; q [nq, C], k, v [nk, C]. */
function attend(q: Float64Array, k: Float64Array, v: Float64Array, C: number, heads: number) {
  const d = C / heads, nq = q.length / C, nk = k.length / C;
  const out = new Float64Array(nq * C);
  const s = new Float64Array(nk);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < nq; i++) {
      let max = -Infinity;
      for (let j = 0; j < nk; j++) {
        let t = 0;
        for (let e = 0; e < d; e++) t += q[i * C + h * d + e] * k[j * C + h * d + e];
        s[j] = t / Math.sqrt(d);
        max = Math.max(max, s[j]);
      }
      let sum = 0;
      for (let j = 0; j < nk; j++) sum += s[j] = Math.exp(s[j] - max);
      for (let e = 0; e < d; e++) {
        let acc = 0;
        for (let j = 0; j < nk; j++) acc += s[j] * v[j * C + h * d + e];
        out[i * C + h * d + e] = acc / sum;
      }
    }
  }
  return out;
}

/** The official MultiScaleBlock. */
function block(
  x: Grid,
  wt: W,
  p: string,
  dimOut: number,
  heads: number,
  win: number,
  pool: boolean,
): Grid {
  const g = (n: string) => wt.get(p + n)!;
  const xn = layerNorm(x, g("norm1.weight"), g("norm1.bias"));
  let shortcut = x;
  if (x.c !== dimOut) {
    const proj = linear(xn.d, x.h * x.w, g("proj.weight"), g("proj.bias"), dimOut);
    shortcut = pool
      ? { h: x.h >> 1, w: x.w >> 1, c: dimOut, d: maxPool(proj, x.h, x.w, dimOut) }
      : { h: x.h, w: x.w, c: dimOut, d: proj };
  }
  const ho = pool ? x.h >> 1 : x.h, wo = pool ? x.w >> 1 : x.w;
  const out = new Float64Array(ho * wo * dimOut);
  const attnWindow = (tokens: Float64Array, side: number, sideW: number) => {
    const n = side * sideW;
    const qkv = linear(tokens, n, g("attn.qkv.weight"), g("attn.qkv.bias"), 3 * dimOut);
    const pick = (j: number) => {
      const t = new Float64Array(n * dimOut);
      for (let r = 0; r < n; r++) {
        for (let k = 0; k < dimOut; k++) t[r * dimOut + k] = qkv[r * 3 * dimOut + j * dimOut + k];
      }
      return t;
    };
    let q: Float64Array = pick(0);
    if (pool) q = maxPool(q, side, sideW, dimOut);
    const a = attend(q, pick(1), pick(2), dimOut, heads);
    return linear(a, a.length / dimOut, g("attn.proj.weight"), g("attn.proj.bias"), dimOut);
  };
  if (win === 0) {
    out.set(attnWindow(xn.d, x.h, x.w));
  } else {
    const { wins, wp } = partition(xn, win);
    const wq = pool ? win / 2 : win, nwx = wp / win;
    wins.forEach((w, i) => {
      const a = attnWindow(w, win, win);
      const wy = Math.floor(i / nwx), wx = i % nwx;
      for (let iy = 0; iy < wq; iy++) {
        for (let ix = 0; ix < wq; ix++) {
          const y = wy * wq + iy, xx = wx * wq + ix;
          if (y >= ho || xx >= wo) continue; // padding, cropped by window_unpartition
          for (let k = 0; k < dimOut; k++) {
            out[(y * wo + xx) * dimOut + k] = a[(iy * wq + ix) * dimOut + k];
          }
        }
      }
    });
  }
  const x2 = new Float64Array(out.length);
  for (let i = 0; i < out.length; i++) x2[i] = shortcut.d[i] + out[i];
  const n2 = layerNorm({ h: ho, w: wo, c: dimOut, d: x2 }, g("norm2.weight"), g("norm2.bias"));
  const hidden = linear(n2.d, ho * wo, g("mlp.layers.0.weight"), g("mlp.layers.0.bias"), 4 * dimOut)
    .map(gelu);
  const y = linear(hidden, ho * wo, g("mlp.layers.1.weight"), g("mlp.layers.1.bias"), dimOut);
  for (let i = 0; i < y.length; i++) y[i] += x2[i];
  return { h: ho, w: wo, c: dimOut, d: y };
}

/** F.interpolate(bicubic, align_corners=False) of (C, ih, iw) to (C, oh, ow), float64. */
function bicubic(src: Float64Array, c: number, ih: number, iw: number, oh: number, ow: number) {
  const A = -0.75;
  const w = (t: number) => {
    const k1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
    const k2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return [k2(t + 1), k1(t), k1(1 - t), k2(2 - t)];
  };
  const out = new Float64Array(c * oh * ow);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < oh; y++) {
      const sy = (ih / oh) * (y + 0.5) - 0.5, y0 = Math.floor(sy), wy = w(sy - y0);
      for (let x = 0; x < ow; x++) {
        const sx = (iw / ow) * (x + 0.5) - 0.5, x0 = Math.floor(sx), wx = w(sx - x0);
        let v = 0;
        for (let a = 0; a < 4; a++) {
          const yy = Math.min(Math.max(y0 - 1 + a, 0), ih - 1);
          for (let b = 0; b < 4; b++) {
            const xx = Math.min(Math.max(x0 - 1 + b, 0), iw - 1);
            v += src[(ch * ih + yy) * iw + xx] * wy[a] * wx[b];
          }
        }
        out[(ch * oh + y) * ow + x] = v;
      }
    }
  }
  return out;
}

/** The whole encoder in float64: stage outputs, FPN levels 0-2 and the kept features (HWC). */
function referenceEncoder(arch: Sam2Arch, wt: W, input: Float32Array): Map<string, Grid> {
  const t = arch.trunk, S = arch.imgSize, E = t.embedDim, g0 = S / 4;
  const pw = wt.get("image_encoder.trunk.patch_embed.proj.weight")!;
  const pb = wt.get("image_encoder.trunk.patch_embed.proj.bias")!;
  const bkg = bicubic(wt.get("image_encoder.trunk.pos_embed")!, E, ...t.posEmbedBkg, g0, g0);
  const pwin = wt.get("image_encoder.trunk.pos_embed_window")!, w0 = t.windowSpec[0];
  let x: Grid = { h: g0, w: g0, c: E, d: new Float64Array(g0 * g0 * E) };
  for (let oy = 0; oy < g0; oy++) {
    for (let ox = 0; ox < g0; ox++) {
      for (let o = 0; o < E; o++) {
        let s = pb[o];
        for (let c = 0; c < 3; c++) {
          for (let ky = 0; ky < 7; ky++) {
            for (let kx = 0; kx < 7; kx++) {
              const y = oy * 4 - 3 + ky, xx = ox * 4 - 3 + kx;
              if (y < 0 || y >= S || xx < 0 || xx >= S) continue;
              s += input[(c * S + y) * S + xx] * pw[((o * 3 + c) * 7 + ky) * 7 + kx];
            }
          }
        }
        s += bkg[(o * g0 + oy) * g0 + ox] + pwin[(o * w0 + (oy % w0)) * w0 + (ox % w0)];
        x.d[(oy * g0 + ox) * E + o] = s;
      }
    }
  }
  const out = new Map<string, Grid>();
  let i = 0;
  const stages: Grid[] = [];
  t.stages.forEach((n, k) => {
    for (let j = 0; j < n; j++, i++) {
      x = block(
        x,
        wt,
        `image_encoder.trunk.blocks.${i}.`,
        t.stageDims[k],
        t.stageHeads[k],
        t.blockWindowSizes[i],
        t.qPoolBlocks.includes(i),
      );
    }
    stages.push(x);
    out.set(`act_trunk_stage${k}`, x);
  });
  const C = arch.dModel;
  const conv1 = (g: Grid, name: string, cout: number): Grid => ({
    h: g.h,
    w: g.w,
    c: cout,
    d: linear(g.d, g.h * g.w, wt.get(`${name}.weight`)!, wt.get(`${name}.bias`)!, cout),
  });
  let prev: Grid | null = null;
  for (let lvl = 3; lvl >= 0; lvl--) {
    const lat = conv1(stages[lvl], `image_encoder.neck.convs.${3 - lvl}.conv`, C);
    if (arch.neck.fpnTopDownLevels.includes(lvl) && prev) {
      const p: Grid = prev;
      for (let y = 0; y < lat.h; y++) {
        for (let xx = 0; xx < lat.w; xx++) {
          for (let k = 0; k < C; k++) {
            lat.d[(y * lat.w + xx) * C + k] += p.d[((y >> 1) * p.w + (xx >> 1)) * C + k];
          }
        }
      }
    }
    prev = lat;
    if (lvl < 3) out.set(`backbone_fpn_${lvl}`, lat);
  }
  const f2 = out.get("backbone_fpn_2")!, mem = wt.get("no_mem_embed")!;
  out.set("image_embed", { ...f2, d: f2.d.map((v, j) => v + mem[j % C]) });
  out.set("high_res_feats_0", conv1(out.get("backbone_fpn_0")!, "sam_mask_decoder.conv_s0", C / 8));
  out.set("high_res_feats_1", conv1(out.get("backbone_fpn_1")!, "sam_mask_decoder.conv_s1", C / 4));
  return out;
}

Deno.test("an unseen SAM 2 shape (96 px, 2 heads, global q-pool, padded windows) matches a float64 reference", async () => {
  const hints = {
    imgSize: 96,
    numHeads: 2,
    windowSpec: [6, 4, 4, 2],
    globalAttBlocks: [3, 4],
    qPool: 3,
  };
  // The encoder's tensors for this shape, plus the few decoder tensors inference reads.
  const guess = {
    imgSize: 96,
    dModel: 32,
    trunk: {
      embedDim: 8,
      stages: [1, 2, 2, 1],
      stageDims: [8, 16, 32, 64],
      windowSpec: hints.windowSpec,
      posEmbedBkg: [5, 7],
      mlpRatio: 4,
    },
    neck: { backboneChannelList: [64, 32, 16, 8] },
  } as unknown as Sam2Arch;
  const shapes = new Map<string, { shape: number[] }>();
  for (const [k, v] of expectedSam2EncoderShapes(guess)) shapes.set(k, { shape: v });
  const md = "sam_mask_decoder.";
  shapes.set(`${md}transformer.layers.0.mlp.layers.0.weight`, { shape: [64, 32] });
  shapes.set(`${md}transformer.layers.0.cross_attn_token_to_image.q_proj.weight`, {
    shape: [16, 32],
  });
  shapes.set(`${md}iou_prediction_head.layers.0.weight`, { shape: [32, 32] });
  shapes.set(`${md}mask_tokens.weight`, { shape: [4, 32] });
  const arch = inferSam2Arch(shapes, hints);
  assert.deepEqual(arch.trunk.blockWindowSizes, [6, 6, 4, 0, 0, 4]);
  assert.deepEqual(arch.trunk.qPoolBlocks, [1, 3, 5]);
  assert.deepEqual(arch.trunk.stageHeads, [2, 4, 8, 16]);

  const sd: StateDict = new Map();
  const wt: W = new Map();
  let seed = 1;
  for (const [name, shape] of expectedSam2EncoderShapes(arch)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const fan = shape.length > 1 ? n / shape[0] : 1;
    const r = randomArray(n, seed++, name.includes("pos_embed") ? 0.5 : 1 / Math.sqrt(fan));
    if (/norm[12]\.weight$/.test(name)) { for (let i = 0; i < n; i++) r[i] = 1 + 0.2 * r[i]; }
    sd.set(name, { name, dtype: "float32", shape, bytes: new Uint8Array(r.buffer) });
    wt.set(name, Float64Array.from(r));
  }
  const input = randomArray(3 * 96 * 96, 4242, 2);
  const ref = referenceEncoder(arch, wt, input);

  const ctx = await getContext();
  // Planned for the device's binding limit (the MLPs whole), then for an 8 KiB one, which
  // slices every MLP hidden layer (2 to 8 slices here: odd and even counts).
  for (const maxBindingBytes of [undefined, 8 * 1024]) {
    const encoder = Sam2ImageEncoder.fromStateDict(ctx, sd, arch, { maxBindingBytes });
    if (maxBindingBytes) {
      const slices = encoder.trunk.blocks.map((b) => b.mlpChunks);
      assert.ok(slices.every((n) => n > 1), `slices ${slices}`);
      assert.ok(slices.some((n) => n % 2 === 1) && slices.some((n) => n % 2 === 0), `${slices}`);
    }
    try {
      const kept: [string, Tensor][] = [];
      const f = encoder.encode(input, {
        onStage: (s, t) => kept.push([s, cloneTensor(ctx, t, s)]),
      });
      for (const [name, t] of kept) {
        const r = ref.get(name);
        assert.ok(r, `no reference for ${name}`);
        let got = await t.read();
        // Stages and levels come token-major [H, W, C]; the features NCHW already.
        if (t.shape.length === 3) got = hwcToChw(got, t.shape[0], t.shape[1], t.shape[2]);
        const want = hwcToChw(Float32Array.from(r.d), r.h, r.w, r.c);
        const rep = assertClose(got, want, {
          atol: 1e-4,
          rtol: 1e-4,
          shape: [r.c, r.h, r.w],
          label: `${name} (binding limit ${maxBindingBytes ?? "of the device"})`,
        });
        console.log(`${name}: max |d| ${rep.maxAbs.toExponential(2)}`);
        t.destroy();
      }
      assert.equal(kept.length, 10, "every stage reported");
      disposeSam2Features(f);
    } finally {
      encoder.dispose();
    }
  }
});
