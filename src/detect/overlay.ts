/**
 * Overlay drawing for detect-then-segment: the photo with each mask tinted in its own
 * colour (outline solid), its detector box, and a label "class 0.92" on a filled tag above
 * the box (inside it when the box touches the top edge). Encoded as PNG with imagescript.
 */
// Versioned npm: specifier, not a bare one: mod.ts must import from any folder without our
// deno.json (tests/api/mod_import_test.ts; versions kept equal to deno.json's imports).
// deno-lint-ignore no-import-prefix
import { Image } from "npm:imagescript@1.3.1";
import type { RgbImage } from "../types.ts";
import { rasterizeText, textSize } from "./bitmap_font.ts";

export interface OverlayItem {
  /** Binary mask (height x width, row-major 0/1), or null for a box alone. */
  mask: Uint8Array | null;
  /** [x0, y0, x1, y1] in photo pixels. */
  box: readonly number[];
  label: string;
}

export interface OverlayOptions {
  /** Mask tint opacity, 0..1; default 0.45. */
  alpha?: number;
  /** Font pixel size; default grows with the photo (1 up to 400 px, then 1 per 400 px). */
  textScale?: number;
  /** Box line width in pixels; default like textScale, at least 2 from 400 px on. */
  lineWidth?: number;
}

/** A distinct colour per index: hues spaced by the golden ratio, saturated and bright. */
export function paletteColor(i: number): [number, number, number] {
  const h = (i * 0.618033988749895 + 0.1) % 1, s = 0.8, v = 0.95;
  const k = (n: number) => (n + h * 6) % 6;
  const f = (n: number) => v - v * s * Math.max(0, Math.min(k(n), 4 - k(n), 1));
  return [Math.round(f(5) * 255), Math.round(f(3) * 255), Math.round(f(1) * 255)];
}

/** The photo with the items drawn on it, as RGBA pixels (width x height x 4). */
export function drawOverlay(
  image: RgbImage,
  items: readonly OverlayItem[],
  opts: OverlayOptions = {},
): Uint8ClampedArray {
  const { width: w, height: h, channels: ch, data } = image;
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgba[4 * i] = data[ch * i];
    rgba[4 * i + 1] = data[ch * i + 1];
    rgba[4 * i + 2] = data[ch * i + 2];
    rgba[4 * i + 3] = 255;
  }
  const alpha = opts.alpha ?? 0.45;
  const scale = opts.textScale ?? Math.max(1, Math.round(Math.max(w, h) / 400));
  const line = opts.lineWidth ?? Math.max(scale, Math.max(w, h) >= 400 ? 2 : 1);
  const set = (x: number, y: number, c: readonly number[]) => {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    const o = 4 * (y * w + x);
    rgba[o] = c[0];
    rgba[o + 1] = c[1];
    rgba[o + 2] = c[2];
  };
  // Masks first (all of them), then boxes and labels on top, so no tint covers a label.
  items.forEach((item, i) => {
    const m = item.mask;
    if (!m) return;
    if (m.length !== w * h) {
      throw new Error(`overlay: mask ${i} has ${m.length} pixels, the photo ${w}x${h}`);
    }
    const c = paletteColor(i);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = y * w + x;
        if (!m[p]) continue;
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !m[p - 1] || !m[p + 1] ||
          !m[p - w] || !m[p + w];
        const a = edge ? 1 : alpha;
        for (let k = 0; k < 3; k++) rgba[4 * p + k] = rgba[4 * p + k] * (1 - a) + c[k] * a;
      }
    }
  });
  items.forEach((item, i) => {
    const c = paletteColor(i);
    // Pixel bounds: the box covers pixels floor(x0) .. ceil(x1) - 1, kept inside the photo.
    const clampX = (v: number) => Math.min(Math.max(v, 0), w - 1);
    const clampY = (v: number) => Math.min(Math.max(v, 0), h - 1);
    const x0 = clampX(Math.floor(item.box[0])), y0 = clampY(Math.floor(item.box[1]));
    const x1 = clampX(Math.ceil(item.box[2]) - 1), y1 = clampY(Math.ceil(item.box[3]) - 1);
    for (let t = 0; t < line; t++) {
      for (let x = x0; x <= x1; x++) {
        set(x, y0 + t, c);
        set(x, y1 - t, c);
      }
      for (let y = y0; y <= y1; y++) {
        set(x0 + t, y, c);
        set(x1 - t, y, c);
      }
    }
    if (!item.label) return;
    const pad = scale;
    const size = textSize(item.label, scale);
    const tagW = size.width + 2 * pad, tagH = size.height + 2 * pad;
    const tagX = Math.max(0, Math.min(x0, w - tagW));
    const tagY = y0 - tagH >= 0 ? y0 - tagH : Math.max(0, y0); // above the box, else inside
    for (let y = tagY; y < tagY + tagH; y++) for (let x = tagX; x < tagX + tagW; x++) set(x, y, c);
    // Dark text on light tags, white on dark (ITU-R BT.601 luma).
    const ink = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 ? [0, 0, 0] : [255, 255, 255];
    rasterizeText(item.label, tagX + pad, tagY + pad, scale, (x, y) => set(x, y, ink));
  });
  return rgba;
}

/** drawOverlay encoded as PNG bytes. */
export async function renderOverlayPng(
  image: RgbImage,
  items: readonly OverlayItem[],
  opts: OverlayOptions = {},
): Promise<Uint8Array> {
  const out = new Image(image.width, image.height);
  out.bitmap.set(drawOverlay(image, items, opts));
  return await out.encode();
}

/** Overlay items for detections with masks: label "<class> <score to 2 decimals>". */
export function overlayItems(
  detections: readonly { box: readonly number[]; className: string; score: number }[],
  masks: readonly (Uint8Array | null)[],
): OverlayItem[] {
  return detections.map((d, i) => ({
    mask: masks[i] ?? null,
    box: d.box,
    label: `${d.className} ${d.score.toFixed(2)}`,
  }));
}
