/**
 * PositionEmbeddingSine (`modeling/position_encoding.py`) as the FPN neck configures it
 * (num_pos_feats = d_model, temperature 10000, normalize, scale 2 pi): a (C, H, W) map that
 * depends only on the grid size, never on the image. So it has no kernel: it is computed on
 * the CPU once per size and cached by its user. Only the memory attention (video) reads it;
 * the image predictor does not.
 *
 *   y_embed = (1..H) / (H + 1e-6) * 2 pi, x_embed likewise over W   (float32, as torch)
 *   dim_t[j] = 10000 ^ (2 * floor(j / 2) / (C / 2)),  j < C / 2
 *   channels [0, C/2): y_embed / dim_t, sin at even j, cos at odd j; [C/2, C): the same of x
 */

const f = Math.fround;

/** The (C, H, W) sine position encoding, float32, channel-major. */
export function positionEmbeddingSine(channels: number, h: number, w: number): Float32Array {
  if (!Number.isInteger(channels) || channels < 2 || channels % 2 !== 0) {
    throw new Error(`positionEmbeddingSine: channels ${channels} must be even`);
  }
  const half = channels / 2;
  const scale = f(2 * Math.PI);
  const dimT = new Float32Array(half);
  for (let j = 0; j < half; j++) dimT[j] = f(10000 ** f(f(2 * Math.floor(j / 2)) / half));
  const axis = (n: number) => {
    const denom = f(n + 1e-6);
    return Array.from({ length: n }, (_, i) => f(f((i + 1) / denom) * scale));
  };
  // enc[j][i]: the y (or x) half depends on one coordinate only: a table per axis.
  const table = (vals: number[]) =>
    Array.from({ length: half }, (_, j) =>
      Float32Array.from(vals, (v) => {
        const a = f(v / dimT[j]);
        return j % 2 === 0 ? Math.sin(a) : Math.cos(a);
      }));
  const ty = table(axis(h)), tx = table(axis(w));
  const out = new Float32Array(channels * h * w);
  for (let j = 0; j < half; j++) {
    for (let y = 0; y < h; y++) {
      out.fill(ty[j][y], (j * h + y) * w, (j * h + y + 1) * w);
      out.set(tx[j], ((half + j) * h + y) * w);
    }
  }
  return out;
}
