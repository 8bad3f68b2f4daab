/** A polygon rasterizer written for the tests, independent of src/util/contours.ts. */

/**
 * Scanline even-odd fill of polygons at pixel centres: pixel (x, y) is set when its centre
 * (x + 0.5, y + 0.5) has an odd number of polygon edges to its left on that row. An edge
 * counts for a row when the row's centre line lies in [min y, max y) of the edge.
 */
export function rasterizeEvenOdd(
  polygons: readonly (readonly number[])[],
  width: number,
  height: number,
): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const cy = y + 0.5;
    const xs: number[] = [];
    for (const p of polygons) {
      const n = p.length / 2;
      for (let i = 0; i < n; i++) {
        const j = (i + 1) % n;
        const x0 = p[2 * i], y0 = p[2 * i + 1], x1 = p[2 * j], y1 = p[2 * j + 1];
        if (y0 === y1) continue;
        const lo = Math.min(y0, y1), hi = Math.max(y0, y1);
        if (cy < lo || cy >= hi) continue;
        xs.push(x0 + (cy - y0) * (x1 - x0) / (y1 - y0));
      }
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      // Pixels whose centre x + 0.5 lies in [xs[k], xs[k+1]).
      const from = Math.max(0, Math.ceil(xs[k] - 0.5));
      const to = Math.min(width, Math.ceil(xs[k + 1] - 0.5));
      for (let x = from; x < to; x++) out[y * width + x] ^= 1;
    }
  }
  return out;
}
